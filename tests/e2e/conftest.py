"""End to end: the service started the way `make run` starts it, driven by a real browser.

One set of processes serves the whole package: gunicorn (the Procfile's web
line, plus `--no-control-socket`), a Celery worker, Celery beat and the
sandbox gateway's own gunicorn (the Procfile's sandbox line), each a process
of its own on the database and broker the suite runs on
(`tests.conftest.service_env`). Their `PUBLIC_BASE_URL` is a forwarding proxy
(`tests/e2e/proxy.py`) in front of gunicorn, so every request of the browser,
of the service to the sandbox gateway and of the gateway's IPNs passes through
it, and a test can hold or fail the IPNs of one order.

The browser is Debian's Chromium (see tests/browser/conftest.py), with or
without JavaScript. Screenshots go to var/test/screenshots/ (e2e-*.png), the
processes' logs to $VAR_DIR/e2e/, each flow's duration to
var/test/e2e-durations.json; a failing test names them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.chromium import SCREENSHOTS, chromium
from tests.conftest import BASE_DIR, service_env
from tests.e2e.proxy import ForwardingProxy

# The sandbox re-sends an unacknowledged IPN after this many seconds (30 minutes by default).
IPN_RETRY_SECONDS = 2
DURATIONS_FILE = BASE_DIR / "var" / "test" / "e2e-durations.json"
STARTUP_TIMEOUT = 90.0
# Flow durations of this run: {configuration: {test id: seconds}}.
DURATIONS: dict[str, dict[str, float]] = {}


def configuration() -> str:
    """e.g. "sqlite+filesystem" or "postgresql+redis"."""
    return f"{connection.vendor}+{settings.CELERY_BROKER_URL.split(':', 1)[0]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """One process of the service, in a process group of its own (so its children go too)."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path, stop_signal: int
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def send(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def wait_stopped(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            self.process.wait()
        # Whatever is left of the group (a pool child that outlived its parent).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class Service:
    """The running service: `url` is its public address (the proxy); the gateway's is apart."""

    url: str
    sandbox_url: str
    proxy: ForwardingProxy
    processes: list[ServiceProcess]
    startup_seconds: float = 0.0
    configuration: str = ""
    logs: list[Path] = field(default_factory=list)

    def assert_running(self) -> None:
        dead = [p for p in self.processes if not p.alive()]
        assert not dead, "service processes died: " + ", ".join(
            f"{p.name} (see {p.log_path})" for p in dead
        )


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def _gunicorn(port: int, *, workers: int) -> list[str]:
    """A Procfile gunicorn line; gunicorn >= 25 would share ~/.gunicorn/gunicorn.ctl without
    `--no-control-socket`."""
    return _python(
        "gunicorn", "merchant.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", "8", "--timeout", "60",
        "--access-logfile", "-", "--no-control-socket",
    )  # fmt: skip


def _wait_ready(service: Service, worker: ServiceProcess, beat: ServiceProcess) -> None:
    from merchant.celery import app

    deadline = time.monotonic() + STARTUP_TIMEOUT
    ready: set[str] = set()
    while time.monotonic() < deadline:
        service.assert_running()
        if "worker" not in ready:
            replies = app.control.ping(timeout=0.5) or []
            if any(name.startswith("e2e-worker@") for reply in replies for name in reply):
                ready.add("worker")
        if "beat" not in ready and "beat: Starting" in beat.log_text():
            ready.add("beat")
        if "web" not in ready:
            try:
                # 200 only when the database, the broker and a worker all answer.
                response = requests.get(f"{service.url}/healthz", timeout=5)
                if response.status_code == 200:
                    ready.add("web")
            except requests.RequestException:
                pass
        if "sandbox" not in ready:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{service.sandbox_url}/sandbox/", timeout=5).status_code == 200:
                    ready.add("sandbox")
        if ready == {"worker", "beat", "web", "sandbox"}:
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the service did not start within {STARTUP_TIMEOUT}s (ready: {sorted(ready)}); "
        f"see {', '.join(str(p.log_path) for p in service.processes)}"
    )


@pytest.fixture(scope="package")
def service(django_db_setup: None) -> Iterator[Service]:
    """gunicorn, a Celery worker and Celery beat on the test database and broker."""
    started = time.monotonic()
    var = Path(settings.VAR_DIR) / "e2e"
    var.mkdir(parents=True, exist_ok=True)
    schedule = var / "celerybeat-schedule"
    for old in var.glob("celerybeat-schedule*"):
        old.unlink()
    port, sandbox_port = free_port(), free_port()
    proxy = ForwardingProxy(upstream_port=port).start()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = service_env(
        HOST="127.0.0.1",
        PORT=str(port),
        PUBLIC_BASE_URL=proxy.url,
        SANDBOX_URL=sandbox_url,  # the gateway is a server of its own, as in `make run`
        # `make run` keeps one key in var/dev.env; every process must sign alike.
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        SANDBOX_IPN_RETRY_SECONDS=str(IPN_RETRY_SECONDS),
        SANDBOX_IPN_TIMEOUT="15",
    )
    web = ServiceProcess(
        "web",
        _gunicorn(port, workers=2),  # the Procfile's web line
        env,
        var / "web.log",
        signal.SIGINT,  # gunicorn's quick shutdown
    )
    worker = ServiceProcess(
        "worker",
        _python(
            "celery",
            "--app",
            "merchant",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "--hostname",
            "e2e-worker@%h",
            "--without-gossip",
            "--without-mingle",
        ),
        env,
        var / "worker.log",
        signal.SIGTERM,  # warm shutdown, as Ctrl-C under `make run`
    )
    beat = ServiceProcess(
        "beat",
        _python(
            "celery", "--app", "merchant", "beat", "--loglevel", "INFO", "--schedule", str(schedule)
        ),
        env,
        var / "beat.log",
        signal.SIGTERM,
    )
    sandbox = ServiceProcess(
        "sandbox",
        _gunicorn(sandbox_port, workers=1),  # the Procfile's sandbox line
        {**env, "DJANGO_SETTINGS_MODULE": "sandbox.site_settings"},
        var / "sandbox.log",
        signal.SIGINT,
    )
    processes = [web, worker, beat, sandbox]
    # This configuration's screenshots of an earlier failure would mislead.
    for stale in SCREENSHOTS.glob(f"e2e-{connection.vendor}-*-failure-*.png"):
        stale.unlink()
    service = Service(
        url=proxy.url,
        sandbox_url=sandbox_url,
        proxy=proxy,
        processes=processes,
        configuration=configuration(),
        logs=[p.log_path for p in processes],
    )
    try:
        for process in processes:
            process.start()
        _wait_ready(service, worker, beat)
        service.startup_seconds = round(time.monotonic() - started, 2)
        yield service
    finally:
        for process in reversed(processes):
            process.send(process.stop_signal)
        for process in reversed(processes):
            process.wait_stopped(timeout=20)
        proxy.stop()
        _purge_broker()
        _write_durations(service)


def _purge_broker() -> None:
    """Leave no task of these processes (beat's sweeps) to the workers of later tests."""
    from merchant.celery import app

    try:
        app.control.purge()
    except Exception as exc:  # the run's result does not depend on it
        print(f"e2e: could not purge the broker: {exc}")


def _write_durations(service: Service) -> None:
    flows = DURATIONS.get(service.configuration)
    if not flows:
        return
    try:
        recorded = json.loads(DURATIONS_FILE.read_text())
    except (OSError, ValueError):
        recorded = {}
    recorded[service.configuration] = {
        "service_startup_seconds": service.startup_seconds,
        "flows_seconds": flows,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    DURATIONS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DURATIONS_FILE.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


class Payer:
    """A browser context on the service, with or without JavaScript; one tab or more."""

    def __init__(self, browser: Any, service: Service, javascript: bool, name: str) -> None:
        self.service = service
        self.javascript = javascript
        self.name = name
        self.context = browser.new_context(
            base_url=service.url,
            java_script_enabled=javascript,
            viewport={"width": 1100, "height": 900},
        )
        self.context.set_default_timeout(20_000)
        self.shots: list[Path] = []
        self.started = time.monotonic()

    def new_page(self) -> Any:
        return self.context.new_page()

    def screenshot(self, page: Any, step: str) -> Path:
        mode = "js" if self.javascript else "nojs"
        database = self.service.configuration.split("+")[0]
        path = SCREENSHOTS / f"e2e-{database}-{self.name}-{mode}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def finished(self) -> float:
        """The flow is done: record how long it took."""
        seconds = round(time.monotonic() - self.started, 2)
        mode = "js" if self.javascript else "nojs"
        DURATIONS.setdefault(self.service.configuration, {})[f"{self.name}[{mode}]"] = seconds
        return seconds


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's Chromium, headless; a missing browser fails the test, never skips it."""
    with chromium(monkeypatch) as launched:
        yield launched


@pytest.fixture
def payer(
    request: pytest.FixtureRequest, browser: Any, service: Service, js: bool
) -> Iterator[Payer]:
    """`js` comes from the test's parametrization: the same flow with JavaScript and without."""
    name = request.node.originalname.removeprefix("test_")
    payer = Payer(browser, service, js, name)
    try:
        yield payer
    finally:
        payer.context.close()
    service.assert_running()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    payer = getattr(item, "funcargs", {}).get("payer")
    if report.when == "call" and report.failed and isinstance(payer, Payer):
        lines = []
        for number, page in enumerate(payer.context.pages):
            try:
                lines.append(str(payer.screenshot(page, f"failure-{number}")))
            except Exception as exc:
                lines.append(f"(tab {number}: no screenshot: {exc})")
        lines += [str(path) for path in payer.shots if str(path) not in lines]
        text = "screenshots (var/test/screenshots/):\n  " + "\n  ".join(lines)
        text += "\nservice logs:\n  " + "\n  ".join(str(p) for p in payer.service.logs)
        report.sections.append(("e2e screenshots and logs", text))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not DURATIONS:
        return
    terminalreporter.section("end-to-end flow durations")
    for config, flows in DURATIONS.items():
        for name, seconds in flows.items():
            terminalreporter.write_line(f"{config:<20} {name:<40} {seconds:6.2f} s")
    terminalreporter.write_line(f"(also in {DURATIONS_FILE})")
