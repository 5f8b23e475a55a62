"""Nonce under concurrency: 2 processes x 50 concurrent order creations against the sandbox.

Two real processes of the service (tests/payments/nonce_load.py) share the
test database, hence the nonce counter (payments.nonces), and one API key.
In each, 50 threads, each with its own client from gateway_client(), are
released together (a barrier in each process, and one go-signal for both)
and create one order each at the sandbox gateway, over real HTTP. Each call
holds the key's call lock (payments.nonces.nonce_call_lock) from its nonce to
the reply, so no request overtakes another's nonce: the gateway refuses none
as stale (without the lock some 40 % were, and the client re-signed them), and
no nonce failure may reach the caller.

The sandbox runs as production runs the service (Procfile): a gunicorn
process of its own, gthread workers, on the same test database. Its
concurrency, and so its database connections (DATABASE_CONN_MAX_AGE=0: one
per request in flight, at most workers x threads), is bounded as a real
server's is; each load process bounds its own likewise (nonce_load.py). So
the test fits PostgreSQL's default max_connections=100.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from django.db import connection

from payments.models import GatewayNonce
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxOrder
from tests.conftest import BASE_DIR, is_postgres, service_env
from tests.payments.nonce_load import READY, SUMMARY

PROCESSES = 2
THREADS = 50
TIME_LIMIT = 60.0
HOST = "127.0.0.1"
# The sandbox's gunicorn, as the Procfile runs the service.
SERVER_WORKERS = 2
SERVER_THREADS = 8
# A load process stands for one such server of the service: as many connections at most.
LOAD_DB_CONNECTIONS = SERVER_WORKERS * SERVER_THREADS
READY_PATH = "/sandbox/api/1/generic/currency?currency=USD"  # a public method, no nonce
TOO_MANY_CLIENTS = "too many clients"  # PostgreSQL's "FATAL: sorry, too many clients already"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def private_control_socket() -> list[str]:
    """Keep off the control socket every gunicorn opens at one path (~/.gunicorn/gunicorn.ctl).

    gunicorn 25.1+ replaces that socket at start and removes it at stop: this test's
    server must not take it from a server of the service running beside the tests.
    """
    from gunicorn.config import Config

    return ["--no-control-socket"] if "control_socket_disable" in Config().settings else []


class SandboxServer:
    """The sandbox gateway served by `gunicorn merchant.wsgi` in a process of its own."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = service_env(
            DATABASE_CONN_MAX_AGE="0",  # a connection per request, closed at its end
            SANDBOX_ENABLED="1",
            PUBLIC_BASE_URL=self.url,
            GATEWAY_API_URL=self.api_url,
            GATEWAY_PAYMENT_HOST=f"{self.url}/sandbox",
            LOG_LEVEL="WARNING",
        )
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "merchant.wsgi",
                    "--bind",
                    f"{HOST}:{self.port}",
                    "--worker-class",
                    "gthread",
                    "--workers",
                    str(SERVER_WORKERS),
                    "--threads",
                    str(SERVER_THREADS),
                    "--timeout",
                    "60",
                    "--graceful-timeout",
                    "5",
                    "--error-logfile",
                    "-",
                    *private_control_socket(),
                ],
                cwd=BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest reaches us, and we stop it
            )

    @property
    def api_url(self) -> str:
        return f"{self.url}/sandbox/api/"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def workers(self) -> int:
        """How many worker processes (children of the gunicorn master) are running."""
        count = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            count += int(fields[1]) == self.process.pid
        return count

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            conn.request("GET", READY_PATH, headers={"User-Agent": "nonce-test readiness"})
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float) -> None:
        """Until the sandbox answers and every worker process has started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the sandbox's gunicorn exited with {self.process.returncode}:\n"
                    f"{self.log_tail()}"
                )
            if self._answers() and self.workers() >= SERVER_WORKERS:
                return
            time.sleep(0.1)
        raise AssertionError(f"the sandbox's gunicorn not ready in {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # graceful: the workers finish their requests
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# Connections this load may open besides the test's own: the sandbox's (one per request
# in flight) and the load processes' (one per thread drawing a nonce), each bounded.
LOAD_CONNECTIONS = SERVER_WORKERS * SERVER_THREADS + PROCESSES * LOAD_DB_CONNECTIONS


def postgres_connections() -> tuple[int, int]:
    """(connections free for the test's role, max_connections) on the PostgreSQL server."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        )
        row = cursor.fetchone()
    assert row is not None
    limit, reserved, superuser, in_use = row
    return limit - (0 if superuser else reserved) - in_use, limit


def connections_message(free: int, limit: int) -> str:
    return (
        f"PostgreSQL has {free} connections free (max_connections={limit}); this load opens "
        f"up to {LOAD_CONNECTIONS} ({SERVER_WORKERS}x{SERVER_THREADS} for the sandbox, "
        f"{LOAD_DB_CONNECTIONS} per load process): is another run holding connections?"
    )


def require_postgres_connections() -> None:
    """Fail at once, before loading a shared server, when it cannot hold the load's peak."""
    free, limit = postgres_connections()
    if free < LOAD_CONNECTIONS:
        pytest.fail(connections_message(free, limit))


def fail_if_connections_ran_out(texts: list[str]) -> None:
    """A clear failure when PostgreSQL refused connections during the run."""
    if is_postgres() and any(TOO_MANY_CLIENTS in text for text in texts):
        pytest.fail("ran out of connections: " + connections_message(*postgres_connections()))


@pytest.fixture
def sandbox_server(transactional_db: None, tmp_path: Path) -> Iterator[SandboxServer]:
    """A gunicorn sandbox on the test database; stopped before the database is flushed."""
    if is_postgres():
        require_postgres_connections()
    server = SandboxServer(tmp_path / "sandbox.log")
    try:
        server.wait_ready(timeout=TIME_LIMIT)
        yield server
    finally:
        server.stop()


class LoadProcess:
    """One `python -m tests.payments.nonce_load` process (or `command`, another load module
    printing READY and SUMMARY the same way); its stdout read by a thread."""

    def __init__(
        self, index: int, env: dict[str, str], log: Path, command: list[str] | None = None
    ) -> None:
        self.index = index
        self.log = log
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            command
            or [
                sys.executable,
                "-m",
                "tests.payments.nonce_load",
                "--process",
                str(index),
                "--threads",
                str(THREADS),
                "--db-connections",
                str(LOAD_DB_CONNECTIONS),
            ],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
            text=True,
        )
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(
                    f"process {self.index} gave no {prefix!r} line; its stderr:\n{self.stderr()}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :]

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.mark.django_db(transaction=True)
def test_two_processes_of_fifty_concurrent_order_creations_never_see_a_nonce_failure(
    sandbox_server: SandboxServer, settings: Any, tmp_path: Path
) -> None:
    account, _ = ensure_configured_account()
    env = service_env(
        PUBLIC_BASE_URL=sandbox_server.url,
        GATEWAY_API_URL=sandbox_server.api_url,
        GATEWAY_PAYMENT_HOST=f"{sandbox_server.url}/sandbox",
        LOG_LEVEL="WARNING",
    )

    started = time.monotonic()
    processes = [LoadProcess(n, env, tmp_path / f"load-{n}.log") for n in range(PROCESSES)]
    try:
        try:
            for process in processes:
                process.wait_for(READY, timeout=TIME_LIMIT)
            released = time.monotonic()
            for process in processes:
                process.go()
            summaries = [json.loads(p.wait_for(SUMMARY, timeout=TIME_LIMIT)) for p in processes]
            finished = time.monotonic()
            exit_codes = [p.process.wait(timeout=10) for p in processes]
        except AssertionError:
            fail_if_connections_ran_out(
                [*(p.stderr() for p in processes), sandbox_server.log_tail(100_000)]
            )
            raise
    finally:
        for process in processes:
            process.stop()

    successes = sum(s["successes"] for s in summaries)
    failures: dict[str, int] = {}
    for summary in summaries:
        for kind, count in summary["failures"].items():
            failures[kind] = failures.get(kind, 0) + count
    nonces = [nonce for s in summaries for nonce in s["nonces"]]
    retries = sum(s["stale_nonce_retries"] for s in summaries)
    most_attempts = max(s["max_attempts"] for s in summaries)
    per_process = ", ".join(str(s["seconds"]) for s in summaries)
    print(
        f"\n{PROCESSES} processes x {THREADS} order creations: {successes} created, "
        f"failures {failures or 'none'}, {len(nonces)} nonces handed out, "
        f"{retries} re-signed after a stale nonce (at most {most_attempts} attempts for one "
        f"call); {finished - released:.2f} s from release ({per_process} s per process), "
        f"{finished - started:.2f} s with process start-up"
    )

    messages = [m for s in summaries for m in s["failure_messages"]]
    fail_if_connections_ran_out([*messages, sandbox_server.log_tail(100_000)])
    assert exit_codes == [0] * PROCESSES, [p.stderr() for p in processes]
    assert [s["hung_threads"] for s in summaries] == [0] * PROCESSES
    assert failures == {}, messages
    assert successes == PROCESSES * THREADS
    # Every order reached the sandbox once: 100 distinct transactions, one per thread.
    reported = {t for s in summaries for t in s["transactions"]}
    assert len(reported) == PROCESSES * THREADS
    stored = SandboxOrder.objects.filter(account=account)
    assert {str(t) for t in stored.values_list("transaction", flat=True)} == reported
    assert sorted(stored.values_list("data", flat=True)) == sorted(
        f"p{p}-t{t}" for p in range(PROCESSES) for t in range(THREADS)
    )
    # The call lock queues the key's calls in nonce order: not one refused as stale.
    assert retries == 0
    # One nonce per attempt (first tries and re-signed ones), never the same one twice.
    assert len(nonces) == PROCESSES * THREADS + retries
    assert len(set(nonces)) == len(nonces)
    # The largest nonce handed out was sent last in the key's order and accepted.
    account.refresh_from_db()
    assert account.last_nonce == max(nonces)
    counter = GatewayNonce.objects.get(api_key=settings.GATEWAY_API_KEY).last_value
    assert counter >= account.last_nonce
    assert counter == max(nonces)  # nobody else handed out nonces for the key meanwhile
    assert finished - started < TIME_LIMIT
