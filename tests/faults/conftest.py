"""Fault tests: the service in a real process of its own, with what it depends on taken away.

`service(...)` starts `gunicorn merchant.wsgi` (as the Procfile runs it) on the test
database, optionally through a `TcpProxy` that the test cuts and restores; the
machine's PostgreSQL and Redis keep running for everyone else. `db_lock` holds a
lock from another connection, as a migration or a stuck transaction would.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.conftest import BASE_DIR, database_url, is_postgres, service_env
from tests.faults.proxy import TcpProxy, url_target

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def require_postgres(why: str) -> None:
    if not is_postgres():
        pytest.skip(f"needs PostgreSQL: {why}")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _no_control_socket() -> list[str]:
    """gunicorn 25.1+ opens a control socket at one shared path; keep off it."""
    from gunicorn.config import Config

    return ["--no-control-socket"] if "control_socket_disable" in Config().settings else []


class ServiceServer:
    """`gunicorn merchant.wsgi` with the fault tests' settings, in a process of its own."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
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
                    "1",
                    "--threads",
                    "4",
                    "--timeout",
                    "60",
                    "--graceful-timeout",
                    "3",
                    "--error-logfile",
                    "-",
                    *_no_control_socket(),
                ],
                cwd=BASE_DIR,
                env=service_env(
                    DJANGO_SETTINGS_MODULE="tests.faults.service_settings",
                    PUBLIC_BASE_URL=self.url,
                    LOG_LEVEL="INFO",
                    **env,
                ),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            conn.request("GET", "/payments/ipn/")  # 405 without touching the database
            return conn.getresponse().status == 405
        except OSError:
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service's gunicorn exited:\n{self.log_text()[-4000:]}")
            if self._answers():
                return
            time.sleep(0.1)
        raise AssertionError(
            f"the service did not start in {timeout} s:\n{self.log_text()[-4000:]}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def proxies() -> Iterator[Callable[[str, int], TcpProxy]]:
    """`proxies(url, default_port)`: a started TcpProxy to the server of `url`."""
    started: list[TcpProxy] = []

    def start(url: str, default_port: int) -> TcpProxy:
        proxy = TcpProxy(*url_target(url, default_port)).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def service(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., ServiceServer]]:
    """`service(lock_timeout_ms=..., DATABASE_URL=..., ...)`: a running service process.

    Set up after the test database and torn down before it is flushed.
    """
    started: list[ServiceServer] = []

    def start(*, lock_timeout_ms: int = 0, **env: str) -> ServiceServer:
        env.setdefault("DATABASE_URL", database_url())
        if lock_timeout_ms:
            env["FAULTS_DB_LOCK_TIMEOUT_MS"] = str(lock_timeout_ms)
        server = ServiceServer(tmp_path / f"service-{len(started)}.log", env)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


class DbLock:
    """Another connection to the test database that holds a lock until released."""

    def __init__(self) -> None:
        self._pg: Any = None
        self._sqlite: sqlite3.Connection | None = None

    def _connect_pg(self) -> None:
        import psycopg

        db = connection.settings_dict
        self._pg = psycopg.connect(
            dbname=db["NAME"],
            user=db["USER"],
            password=db["PASSWORD"] or None,
            host=db["HOST"] or HOST,
            port=db["PORT"] or 5432,
        )

    def lock_tables(self, *tables: str) -> None:
        """PostgreSQL: ACCESS EXCLUSIVE on `tables`; SQLite: the database's write lock."""
        if is_postgres():
            self._connect_pg()
            with self._pg.cursor() as cursor:
                for table in tables:
                    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        else:
            self._sqlite = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")  # the one writer's lock, held

    def lock_order_row(self, order_pk: Any) -> None:
        """PostgreSQL: the order's row locked FOR UPDATE, as another request applying to it."""
        self._connect_pg()
        with self._pg.cursor() as cursor:
            cursor.execute("SELECT id FROM payments_order WHERE id = %s FOR UPDATE", [order_pk])

    def waiters(self) -> int:
        """PostgreSQL: sessions of the test database (not the whole server) waiting for a lock."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def writers_of(self, table: str) -> int:
        """PostgreSQL: other sessions holding a write lock on `table` (an open transaction)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = %s AND l.mode = 'RowExclusiveLock' AND l.granted"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND l.pid <> pg_backend_pid()",
                [table],
            )
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def release(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.rollback()
                self._pg.close()
            self._pg = None
        if self._sqlite is not None:
            with contextlib.suppress(Exception):
                self._sqlite.execute("ROLLBACK")
                self._sqlite.close()
            self._sqlite = None


@pytest.fixture
def db_lock(transactional_db: None) -> Iterator[DbLock]:
    lock = DbLock()
    yield lock
    lock.release()


@pytest.fixture
def make_order(transactional_db: None) -> Callable[..., Any]:
    """tests.factories.accepted_order, committed for the service's own processes to see."""
    from tests.factories import accepted_order

    return accepted_order
