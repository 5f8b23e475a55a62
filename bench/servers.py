"""Benchmark infrastructure: a dedicated database, credentials, gunicorn servers, CPU meters.

`Infrastructure` (a context manager) prepares once per run:

- a fresh database: PostgreSQL `merchant_bench` (BENCH_DATABASE_URL) dropped
  and created again, so that every run starts from the same empty tables
  (and edits to the migrations never meet an old schema); SQLite under a
  temporary VAR_DIR when PostgreSQL cannot be reached (said on stderr);
- production settings (DJANGO_DEBUG=0) with fresh credentials, in an
  environment built here rather than inherited;
- `manage.py migrate` in a subprocess, then Django set up in this process too
  (to seed rows and check results in the same database).

It starts gunicorn servers on free loopback ports (`start_server`), Celery
workers and beat (`start_worker`, `start_beat`, on a broker that
`prepare_broker` empties first), and stops every one of them when the run
ends, also on an error or Ctrl-C.
`Server.cpu_seconds()` is user+system CPU of the gunicorn master and its
workers from /proc/<pid>/stat: read it before and after a phase.
"""

from __future__ import annotations

import base64
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/merchant_bench"
# The Celery broker of the benchmarks that run workers: a Redis database of their own,
# emptied at the start of each such benchmark (BENCH_BROKER_URL).
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/9"
SETTINGS_MODULE = "bench.settings"
HOST = "127.0.0.1"
READY_PATH = "/bench/minimal/"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Settings of the project that must come from us, not from the caller's shell.
_OURS_PREFIXES = ("DJANGO_", "GATEWAY_", "SANDBOX_", "PAYMENTS_", "DEMO_SHOP_")
_OURS = {
    "DATABASE_URL",
    "DATABASE_CONN_MAX_AGE",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "VAR_DIR",
    "PUBLIC_BASE_URL",
    "HOST",
    "PORT",
    "LOG_LEVEL",
}


class BenchError(RuntimeError):
    """The benchmark could not run (a server did not start, the database is unusable...)."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- CPU from /proc ---------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (all its threads), 0.0 when it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def processes_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm == name:
                found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds per pid at one moment, to subtract from a later one."""

    per_pid: dict[int, float]

    @classmethod
    def of(cls, pids: list[int]) -> CpuSnapshot:
        return cls({pid: process_cpu_seconds(pid) for pid in pids})

    def since(self, before: CpuSnapshot) -> float:
        """CPU used between `before` and this snapshot (a process new since counts in full)."""
        return sum(cpu - before.per_pid.get(pid, 0.0) for pid, cpu in self.per_pid.items())


class PostgresMeter:
    """CPU of the local PostgreSQL processes (backends included), when it runs here."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def snapshot(self) -> CpuSnapshot | None:
        return CpuSnapshot.of(processes_named("postgres")) if self.enabled else None

    @staticmethod
    def since(after: CpuSnapshot | None, before: CpuSnapshot | None) -> float | None:
        return after.since(before) if after is not None and before is not None else None


# --- servers ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    workers: int = 2
    worker_class: str = "gthread"
    threads: int = 4

    def describe(self) -> str:
        if self.worker_class == "gthread":
            return f"gunicorn gthread, {self.workers} workers x {self.threads} threads"
        return f"gunicorn {self.worker_class}, {self.workers} workers"

    def args(self) -> list[str]:
        args = ["--workers", str(self.workers), "--worker-class", self.worker_class]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args


class ManagedProcess:
    """A process of the service started in its own session, logging to <log_dir>/<name>.log.

    What gunicorn servers and Celery processes share: starting, the log's tail,
    waiting until ready, the pids and CPU of the process and its children, stopping.
    """

    label = "process"  # in error messages: "<label> <name> exited with ..."
    # stop(): SIGTERM, then after this many seconds SIGKILL.
    stop_timeout = 15.0
    kill_session = False  # SIGKILL the whole session (pool children too), not only the process

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self, command: list[str]) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop it in order
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Until `ready()`; BenchError when the process exits first or `timeout` passes."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.label} {self.name} exited with {self.process.returncode}:\n"
                    f"{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise BenchError(
            f"{self.label} {self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}"
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        if not self.alive:
            return []
        assert self.process is not None
        return [self.process.pid, *children_of(self.process.pid)]

    def cpu(self) -> CpuSnapshot:
        return CpuSnapshot.of(self.pids())

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            if self.kill_session:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait(timeout=15)


class Server(ManagedProcess):
    """One gunicorn server (merchant.wsgi with bench.settings) on a free loopback port.

    stop(): SIGTERM is gunicorn's graceful shutdown of the workers.
    """

    label = "server"

    def __init__(
        self, name: str, env: dict[str, str], config: ServerConfig, log_dir: Path, port: int
    ) -> None:
        super().__init__(name, env, log_dir)
        self.config = config
        self.port = port
        self.access_log_path = log_dir / f"{name}.access.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, *, access_log: bool = False) -> None:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "merchant.wsgi:application",
            "--bind",
            f"{HOST}:{self.port}",
            *self.config.args(),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
            "--error-logfile",
            "-",
        ]
        if access_log:  # only where its cost is not measured (the sandbox)
            command += ["--access-logfile", str(self.access_log_path)]
        self._spawn(command)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until a request answers 200 and every worker process is up."""
        assert self.process is not None
        pid = self.process.pid
        self._wait_until(
            lambda: self._answers() and len(children_of(pid)) >= self.config.workers, timeout
        )

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            conn.request("GET", READY_PATH)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()


# --- Celery workers and beat ---------------------------------------------------------


class CeleryProcess(ManagedProcess):
    """A real `celery worker` or `celery beat` of the project (merchant app), own session.

    stop(): warm shutdown (SIGTERM: running tasks finish), killed after 20 s.
    """

    stop_timeout = 20.0
    kill_session = True  # its own session: the pool's children too

    def __init__(self, name: str, kind: str, env: dict[str, str], args: list[str], log_dir: Path):
        super().__init__(name, env, log_dir)
        self.kind = kind  # "worker" or "beat"
        self.label = kind
        self.args = args

    def start(self) -> None:
        self._spawn([sys.executable, "-m", "celery", "--app", "merchant", self.kind, *self.args])

    def wait_ready(self, marker: str, timeout: float = 60.0) -> None:
        """Until `marker` is in the log (a worker logs "<name>@<host> ready.")."""
        self._wait_until(lambda: marker in self._log_text(), timeout)

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def prepare_broker(url: str) -> None:
    """Empty the bench's Redis database (tasks left by an earlier run would name old rows)."""
    import redis

    if not url.startswith("redis://"):
        raise BenchError(f"BENCH_BROKER_URL must be a redis:// URL, not {url!r}")
    if urlsplit(url).path.strip("/") in ("", "0"):
        raise BenchError(f"BENCH_BROKER_URL must name a Redis database of its own (not 0): {url}")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.flushdb()
        client.close()
    except redis.RedisError as exc:
        raise BenchError(f"Redis at {url} is unusable: {exc}") from exc


# --- the whole run ------------------------------------------------------------------


def _admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def prepare_postgres(url: str) -> bool:
    """Drop and create the bench database; False when PostgreSQL cannot be reached."""
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise BenchError(f"BENCH_DATABASE_URL must name a database of its own, not {name!r}")
    try:
        conn = psycopg.connect(_admin_url(url), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        log(f"PostgreSQL is unreachable ({str(exc).strip().splitlines()[0]})")
        return False
    with conn:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        except psycopg.errors.ObjectInUse as exc:
            raise BenchError(
                f"database {name} is in use (another benchmark running?): {exc}"
            ) from exc
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


class Infrastructure:
    """One run's database, credentials, environment and servers; stops them all on exit."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="merchant-bench-"))
        self.var_dir = self.tmp / "var"
        (self.var_dir / "static").mkdir(parents=True)  # STATIC_ROOT: no whitenoise warning
        self.log_dir = self.tmp / "logs"
        self.log_dir.mkdir()
        self.secret_key = secrets.token_urlsafe(50)
        self.api_key = str(uuid.uuid4())
        self.api_secret = base64.b64encode(secrets.token_bytes(64)).decode("ascii")
        self.database_url = ""
        self.database = ""
        self.servers: list[Server] = []
        self.celery: list[CeleryProcess] = []
        self.broker_url = os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)
        self._previous_sigterm: Any = None
        self.keep_tmp = False

    # -- set up --
    def __enter__(self) -> Infrastructure:
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self._prepare_database()
            self._migrate()
            self._setup_django()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @staticmethod
    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt("SIGTERM")

    def _prepare_database(self) -> None:
        url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
        if url.startswith(("postgres://", "postgresql://")) and prepare_postgres(url):
            self.database_url = url
            self.database = "PostgreSQL " + urlsplit(url).path.lstrip("/")
        else:
            if not url.startswith("sqlite"):
                log("falling back to SQLite under a temporary VAR_DIR: results are NOT comparable")
            path = self.var_dir / "bench.sqlite3"
            self.database_url = f"sqlite:///{path}"
            self.database = f"SQLite {path}"
        log(f"database: {self.database}")

    def env(self, *, public_base_url: str = "", **extra: str) -> dict[str, str]:
        """The environment of a process of the service (production mode, our credentials)."""
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in _OURS and not k.startswith(_OURS_PREFIXES)
        }
        env = {
            **base,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "PYTHONPATH": str(BASE_DIR),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "GATEWAY_API_KEY": self.api_key,
            "GATEWAY_API_SECRET": self.api_secret,
            "SANDBOX_ENABLED": "0",
            "DEMO_SHOP_ENABLED": "0",
            "DATABASE_URL": self.database_url,
            "VAR_DIR": str(self.var_dir),
            "LOG_LEVEL": "WARNING",
            # The order throttle stays in the measured path (its count of the shop's
            # orders, one statement per POST), at a rate no benchmark reaches; a 1 s
            # period keeps the rows it reads few, as production's 60/min does.
            "API_ORDER_CREATE_RATE": "1000000/s",
        }
        if public_base_url:
            env["PUBLIC_BASE_URL"] = public_base_url
        env.update(extra)
        return env

    def run_python(self, args: list[str], *, what: str, timeout: float) -> str:
        """`python <args>` in the service's environment, to its end; its stdout.

        BenchError("<what> failed: ...") with its output when it exits non-zero.
        """
        done = subprocess.run(
            [sys.executable, *args],
            cwd=BASE_DIR,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"{what} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _migrate(self) -> None:
        log("migrating the bench database")
        self.run_python(
            ["manage.py", "migrate", "--noinput", "-v", "0"],
            what="manage.py migrate",
            timeout=300,
        )

    def _setup_django(self) -> None:
        """Django in this process, on the same database and settings as the servers."""
        os.environ.update(self.env())
        import django

        django.setup()

    @property
    def is_postgres(self) -> bool:
        return self.database.startswith("PostgreSQL")

    def postgres_meter(self) -> PostgresMeter:
        # Only a server on this machine has processes we can read.
        local = self.is_postgres and urlsplit(self.database_url).hostname in (
            "127.0.0.1",
            "localhost",
            "::1",
        )
        return PostgresMeter(bool(local and processes_named("postgres")))

    def start_server(
        self,
        name: str,
        config: ServerConfig,
        *,
        access_log: bool = False,
        port: int | None = None,
        **env: str,
    ) -> Server:
        port = port or free_port()
        server = Server(
            name,
            self.env(public_base_url=f"http://{HOST}:{port}", **env),
            config,
            self.log_dir,
            port,
        )
        self.servers.append(server)
        log(f"starting {name} ({config.describe()}) on {server.url}")
        server.start(access_log=access_log)
        server.wait_ready()
        return server

    def stop_server(self, server: Server) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def prepare_broker(self) -> str:
        """The bench's Redis broker (BENCH_BROKER_URL), emptied; its URL for CELERY_BROKER_URL."""
        prepare_broker(self.broker_url)
        log(f"broker: {self.broker_url} (emptied)")
        return self.broker_url

    def start_worker(
        self, name: str, *, concurrency: int = 2, public_base_url: str = "", **env: str
    ) -> CeleryProcess:
        """A `celery worker` (prefork, `concurrency` processes) named <name>@<host>; ready."""
        worker = CeleryProcess(
            name,
            "worker",
            self._celery_env(public_base_url, env),
            [
                "--loglevel",
                "INFO",
                "--concurrency",
                str(concurrency),
                "--pool",
                "prefork",
                "--hostname",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            self.log_dir,
        )
        return self._start_celery(
            worker, f"Celery worker {name} (prefork x {concurrency})", " ready."
        )

    def start_beat(
        self, name: str = "beat", *, public_base_url: str = "", **env: str
    ) -> CeleryProcess:
        """`celery beat` with a schedule file in this run's temporary folder."""
        beat = CeleryProcess(
            name,
            "beat",
            self._celery_env(public_base_url, env),
            [
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.tmp / f"{name}-schedule"),
            ],
            self.log_dir,
        )
        return self._start_celery(beat, f"Celery beat {name}", "beat: Starting...")

    def _celery_env(self, public_base_url: str, env: dict[str, str]) -> dict[str, str]:
        """The service's environment at LOG_LEVEL=INFO: the readiness markers are INFO lines.

        Worker and beat log through settings.LOGGING (merchant.celery's setup_logging
        receiver), whose root level is LOG_LEVEL: at WARNING "<name>@<host> ready." and
        "beat: Starting..." never reach the log that wait_ready reads.
        """
        return self.env(public_base_url=public_base_url, **{"LOG_LEVEL": "INFO", **env})

    def _start_celery(self, process: CeleryProcess, what: str, marker: str) -> CeleryProcess:
        """Start `process` (stopped on exit), until `marker` is in its log."""
        self.celery.append(process)
        log(f"starting {what}")
        process.start()
        process.wait_ready(marker)
        return process

    def stop_celery(self, process: CeleryProcess) -> None:
        process.stop()
        if process in self.celery:
            self.celery.remove(process)

    # -- tear down --
    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        running: list[ManagedProcess] = [*reversed(self.celery), *reversed(self.servers)]
        for process in running:
            try:
                process.stop()
            except Exception as error:  # keep stopping the others
                log(f"could not stop {process.name}: {error}")
        self.celery.clear()
        self.servers.clear()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: S110 (Django may not be set up yet)
            pass
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            self.keep_tmp = True
        if self.keep_tmp:
            log(f"logs kept in {self.log_dir}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
