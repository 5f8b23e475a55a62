"""Production as an operator starts it: a fresh copy, a run-only virtualenv, `make serve`.

DEBUG unset, PostgreSQL, and Redis or RabbitMQ as the broker (both run on this
machine). The gateway is the sandbox, started as a process of its own on
another port, as a real gateway would be. Checked from outside: Chromium loads
the admin (its stylesheet applied), the API docs and a checkout page with the
gateway's button image and script; an order is created through the API and
paid by a signed IPN; /readyz answers 200 with a worker seen.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from playwright.sync_api import expect

from payments.testing import ipn_body, post_ipn_http
from tests.chromium import chromium
from tests.conftest import BASE_DIR, is_postgres
from tests.e2e.conftest import free_port

GATEWAY_KEY = str(uuid.uuid4())
GATEWAY_SECRET = "cHJvZHVjdGlvbi1zdGVwLXNlY3JldC1vZi10aGUtY2ktcnVuLTAxMjM0NTY2Nzg5YWJjZGVmMDEyMw=="
BROKERS = {
    "redis": "redis://127.0.0.1:6379/14",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
START_TIMEOUT = 240.0


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # honcho stops its processes
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _copy_checkout(target: Path) -> None:
    """What a fresh clone holds: the files git tracks (as they are in this working tree)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=BASE_DIR, capture_output=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.decode().split("\0")):
        source = BASE_DIR / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _start(argv: list[str], cwd: Path, env: dict[str, str], log: Path, url: str) -> Started:
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    return Started(process, log, url)


def _wait(started: Started, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            pytest.fail(f"exited early:\n{started.log.read_text()[-4000:]}")
        try:
            if requests.get(started.url + path, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    started.stop()
    pytest.fail(f"{started.url}{path} never answered 200:\n{started.log.read_text()[-4000:]}")


def _base_env() -> dict[str, str]:
    """The machine's environment without the suite's own settings (a new shell's)."""
    ours = ("DJANGO_", "GATEWAY_", "SANDBOX_", "DEMO_SHOP_", "PAYMENTS_", "DEPLOY_", "VAR_DIR")
    dropped = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "VIRTUAL_ENV", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(ours) and k not in dropped}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with its own run-only virtualenv (`make install`)."""
    if not is_postgres():
        pytest.skip("needs PostgreSQL (CI runs it in the PostgreSQL step)")
    root = tmp_path_factory.mktemp("production") / "merchant"
    _copy_checkout(root)
    base_python = getattr(sys, "_base_executable", "python3")  # outside the suite's venv
    subprocess.run(
        ["make", "--no-print-directory", "install", f"PYTHON={base_python}"],
        cwd=root, env=_base_env(), check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def gateway(checkout: Path) -> Iterator[Started]:
    """The sandbox gateway as its own process (development mode, its own database)."""
    port = free_port()
    var = checkout / "var-gateway"
    env = {
        **_base_env(),
        "DJANGO_DEBUG": "1",
        "VAR_DIR": str(var),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GATEWAY_API_KEY": GATEWAY_KEY,
        "GATEWAY_API_SECRET": GATEWAY_SECRET,
        "SANDBOX_ENABLED": "1",
    }
    python = str(checkout / ".venv/bin/python")
    subprocess.run(
        [python, "manage.py", "bootstrap"], cwd=checkout, env=env, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    started = _start(
        [str(checkout / ".venv/bin/gunicorn"), "merchant.wsgi", "--bind", f"127.0.0.1:{port}",
         "--worker-class", "gthread", "--threads", "8", "--no-control-socket"],
        checkout, env, checkout / "gateway.log", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    _wait(started, "/sandbox/")
    yield started
    started.stop()


def _database(name: str) -> str:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(params=sorted(BROKERS))
def served(
    request: Any, checkout: Path, gateway: Started
) -> Iterator[tuple[Started, dict[str, str]]]:
    """`make serve` in production mode on PostgreSQL and the broker of the case."""
    port = free_port()
    env = {
        **_base_env(),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "VAR_DIR": str(checkout / f"var-{request.param}"),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "GATEWAY_API_KEY": GATEWAY_KEY,
        "GATEWAY_API_SECRET": GATEWAY_SECRET,
        "GATEWAY_API_URL": f"{gateway.url}/sandbox/api/",
        "GATEWAY_PAYMENT_HOST": f"{gateway.url}/sandbox",
        "PUBLIC_BASE_URL": "https://pay.ci.example",
        "DATABASE_URL": _database(f"merchant_production_{request.param}"),
        "CELERY_BROKER_URL": BROKERS[request.param],
        "CACHE_URL": "rediscache://127.0.0.1:6379/13",
        "WEB_CONCURRENCY": "2",
        "HEALTH_WORKER_BEAT_SECONDS": "1",
    }
    started = _start(
        ["make", "--no-print-directory", "serve"], checkout, env,
        checkout / f"serve-{request.param}.log", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    try:
        _wait(started, "/readyz")
        yield started, env
    finally:
        started.stop()


def _api_token(checkout: Path, env: dict[str, str]) -> str:
    python = str(checkout / ".venv/bin/python")
    made = subprocess.run(
        [python, "manage.py", "shop_token", "default", "--name", "production test"],
        cwd=checkout, env=env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    match = re.search(r"^API token: (\w+)$", made.stdout, re.MULTILINE)
    assert match, made.stdout
    return match.group(1)


def test_make_serve_in_production_takes_a_payment(
    served: tuple[Started, dict[str, str]],
    checkout: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, env = served
    ready = requests.get(f"{service.url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["worker"] is True, ready.text
    assert requests.get(f"{service.url}/sandbox/", timeout=5).status_code == 404

    token = _api_token(checkout, env)
    created = requests.post(
        f"{service.url}/api/orders/",
        json={"reference": "ci-1", "amount": "12.50", "currency": "USD"},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    order = created.json()

    with chromium(monkeypatch) as browser:
        page = browser.new_page()
        page.goto(f"{service.url}/admin/login/")
        header = page.locator("#header")
        colour = header.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour  # the admin's CSS
        page.goto(f"{service.url}/api/docs/")
        page.locator(".swagger-ui .opblock").first.wait_for(timeout=30_000)
        page.goto(f"{service.url}/checkout/{order['id']}/")
        image = page.locator("span.mtgox a img")
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        page.locator("span.mtgox[data-mtgox-ready='1']").wait_for(timeout=30_000)  # its script

    body = ipn_body(
        transaction=order["transaction"],
        status="paid",
        amount_int=order["quote"]["btc_amount_int"],
    )
    answer = post_ipn_http(service.url, body, api_key=GATEWAY_KEY, api_secret=GATEWAY_SECRET)
    assert (answer.status_code, answer.content) == (200, b"[OK]")
    paid = requests.get(
        f"{service.url}/api/orders/{order['id']}/",
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    ).json()
    assert paid["status"] == "paid", paid


def _bootstrap_token(log: Path) -> str:
    """The API token `make run` prints on its first start ("API token: <key>")."""
    match = re.search(r"^API token: (\w+)$", log.read_text(), re.MULTILINE)
    assert match, log.read_text()[-4000:]
    return match.group(1)


def test_make_run_serves_the_sandbox_from_a_process_of_its_own(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` from the run-only install: the gateway is another server, never the service's.

    16 API clients create orders at once; each creation calls the sandbox, which answers
    from its own process (on the service's threads, these calls starved: bench/README.md,
    make_run_orders). Then a payer without JavaScript pays one at the sandbox's page and
    comes back to the service's return page, which shows it paid once the IPN is applied.
    """
    port, sandbox_port = free_port(), free_port()
    env = {**_base_env(), "HOST": "127.0.0.1", "PORT": str(port),
           "SANDBOX_PORT": str(sandbox_port), "VAR_DIR": str(checkout / "var-run")}  # fmt: skip
    started = _start(
        ["make", "--no-print-directory", "run"], checkout, env, checkout / "run.log",
        f"http://127.0.0.1:{port}",
    )  # fmt: skip
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    try:
        _wait(started, "/readyz")
        assert requests.get(f"{started.url}/sandbox/", timeout=5).status_code == 404
        assert requests.get(f"{sandbox}/sandbox/", timeout=5).status_code == 200
        token = _bootstrap_token(started.log)

        def create(number: int) -> requests.Response:
            return requests.post(
                f"{started.url}/api/orders/",
                json={"reference": f"run-{number}", "amount": "1.00", "currency": "BTC"},
                headers={"Authorization": f"Token {token}"},
                timeout=60,
            )

        with ThreadPoolExecutor(16) as pool:  # within the default 60/min per shop
            answers = list(pool.map(create, range(48)))
        assert [a.status_code for a in answers] == [201] * 48, [a.text for a in answers][:3]
        order = answers[0].json()
        _pay_as_a_payer(monkeypatch, started.url, sandbox, order)
    finally:
        started.stop()


def _pay_as_a_payer(
    monkeypatch: pytest.MonkeyPatch, service: str, sandbox: str, order: dict[str, Any]
) -> None:
    with chromium(monkeypatch) as browser:
        page = browser.new_context(java_script_enabled=False).new_page()
        page.goto(f"{service}/checkout/{order['id']}/")
        page.locator("span.mtgox a").click()
        page.wait_for_url(f"{sandbox}/sandbox/pay/{order['transaction']}")
        page.get_by_role("button", name=re.compile(r"with my gateway account$")).click()
        page.wait_for_url(f"{service}/checkout/{order['id']}/success/")
        # Without JavaScript the return page refreshes itself until the IPN is applied.
        expect(page.locator("#order-status")).to_have_text("paid", timeout=60_000)
