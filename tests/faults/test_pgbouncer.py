"""The service on PostgreSQL through PgBouncer in transaction mode (DATABASE_POOLER=transaction).

A private `pgbouncer` (Debian's package; `.ci/run` installs it) on a free port, in
front of the machine's PostgreSQL, lends a few server connections per transaction
to a real gunicorn of the service. PgBouncer refuses the startup option a direct
connection sets the lock timeout with, so the service starting and answering at all
shows it sends none; the lock timeout comes from `SET LOCAL` in each transaction
(merchant.pooling). What is checked is in the database itself, directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from django.db import connection

from payments.models import Notification, Order, Payment
from payments.testing import post_ipn_http
from tests.factories import api_token_key
from tests.faults.conftest import HOST, DbLock, ServiceServer, free_port, require_postgres
from tests.faults.test_database_faults import assert_paid_once, assert_untouched, paid_body

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
LOCK_TIMEOUT_MS = 1500


class PgBouncer:
    """`pgbouncer` with an ini of its own: transaction pooling, trust, `pool_size` servers."""

    def __init__(self, directory: Path, pool_size: int) -> None:
        db = connection.settings_dict
        self.port = free_port()
        self.user = db["USER"]
        self.dbname = db["NAME"]
        ini = directory / "pgbouncer.ini"
        users = directory / "users.txt"
        users.write_text(f'"{self.user}" ""\n')
        ini.write_text(
            "[databases]\n"
            f"* = host={db['HOST'] or HOST} port={db['PORT'] or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\nadmin_users = {self.user}\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 100\n"
        )
        self.log = directory / "pgbouncer.log"
        # PgBouncer will not run as root; it reads its files before it switches user.
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["pgbouncer", *as_user, str(ini)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@{HOST}:{self.port}/{self.dbname}"

    def connect(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=HOST, port=self.port, user=self.user, dbname=dbname or self.dbname,
            autocommit=True, prepare_threshold=None, connect_timeout=3,
        )  # fmt: skip

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"pgbouncer exited:\n{self.log.read_text()}")
            try:
                self.connect().close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise AssertionError(f"pgbouncer did not start:\n{self.log.read_text()}")

    def transactions(self) -> int:
        """Transactions PgBouncer has pooled for the test database (its admin console)."""
        with self.connect("pgbouncer") as admin:
            cursor = admin.execute("SHOW STATS")
            names = [column.name for column in cursor.description or []]
            for row in cursor.fetchall():
                stats = dict(zip(names, row, strict=True))
                if stats["database"] == self.dbname:
                    return int(stats["total_xact_count"])
        return 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def pgbouncer(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., PgBouncer]]:
    """`pgbouncer(pool_size=2)`: a running PgBouncer in front of the test database."""
    require_postgres("PgBouncer pools PostgreSQL connections")
    if shutil.which("pgbouncer") is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    started: list[PgBouncer] = []

    def start(pool_size: int = 2) -> PgBouncer:
        directory = tmp_path / f"pgbouncer-{len(started)}"
        directory.mkdir()
        started.append(PgBouncer(directory, pool_size))
        return started[-1]

    yield start
    for bouncer in started:
        bouncer.stop()


def pooled_service(service: Callable[..., ServiceServer], bouncer: PgBouncer, **env: Any) -> Any:
    return service(DATABASE_URL=bouncer.url, DATABASE_POOLER="transaction", **env)


def create_order(server: ServiceServer, token: str, reference: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/orders/",
        json={"reference": reference, "amount": "0.25", "currency": "BTC"},
        headers={"Authorization": f"Token {token}", "Idempotency-Key": reference},
        timeout=60,
    )


def test_orders_and_concurrent_duplicate_ipns_through_pgbouncer_apply_once(
    service: Callable[..., ServiceServer], pgbouncer: Callable[..., PgBouncer]
) -> None:
    # Fewer server connections than gunicorn has threads, and enough for two creations: a
    # gateway call holds its key's lock in a transaction (payments.nonces), the other
    # creation waits for it in one, and the sandbox answering the call needs a third.
    bouncer = pgbouncer(pool_size=3)
    server = pooled_service(service, bouncer)
    token = api_token_key(name="shop")
    references = [f"pooled-{i}" for i in range(6)]

    # Orders created against the sandbox, which the same process serves: both sides pooled.
    with ThreadPoolExecutor(max_workers=2) as pool:
        created = list(pool.map(lambda ref: create_order(server, token, ref), references))
    assert [r.status_code for r in created] == [201] * 6, [r.content for r in created]
    orders = list(Order.objects.filter(reference__in=references))
    assert {o.status for o in orders} == {"awaiting_payment"}

    # Each order's payment notified three times at once, as a gateway retrying would.
    bodies = [paid_body(order) for order in orders]
    sends = [body for body in bodies for _ in range(3)]
    with ThreadPoolExecutor(max_workers=9) as pool:
        answers = list(pool.map(lambda body: post_ipn_http(server.url, body, timeout=60), sends))

    assert [(a.status_code, a.content) for a in answers] == [(200, b"[OK]")] * len(sends)
    for order in orders:
        order.refresh_from_db()
        assert order.status == "paid"
        assert Payment.objects.filter(order=order).count() == 1
        assert list(order.transitions.values_list("to_status", flat=True)) == [
            "awaiting_payment", "paid",
        ]  # fmt: skip
        assert Notification.objects.filter(order=order).values_list(
            "outcome", "times_received"
        ).get() == ("applied", 3)
    assert bouncer.transactions() > 0  # the traffic did go through PgBouncer


def test_a_locked_row_through_pgbouncer_is_503_after_the_timeout_and_poisons_nothing(
    service: Callable[..., ServiceServer],
    pgbouncer: Callable[..., PgBouncer],
    make_order: Callable[..., Order],
    db_lock: DbLock,
) -> None:
    """One server connection: whatever the timed-out transaction left on it, the next one gets."""
    bouncer = pgbouncer(pool_size=1)
    server = pooled_service(service, bouncer, lock_timeout_ms=LOCK_TIMEOUT_MS)
    order, other = make_order(reference="pooled-locked"), make_order(reference="pooled-free")
    body = paid_body(order)
    db_lock.lock_order_row(order.pk)  # a direct connection, as a stuck transaction would

    started = time.monotonic()
    answer = post_ipn_http(server.url, body, timeout=30)
    waited = time.monotonic() - started

    assert (answer.status_code, answer.content[:4]) == (503, b"Temp")
    assert LOCK_TIMEOUT_MS / 1000 * 0.9 <= waited < 10, waited
    assert "lock timeout" in server.log_text()
    assert_untouched(order, body)
    # The server connection went back to the pool clean: no lock timeout, no transaction.
    with bouncer.connect() as pooled:
        assert pooled.execute("SHOW lock_timeout").fetchone() == ("0",)

    free = paid_body(other)
    assert post_ipn_http(server.url, free, timeout=30).content == b"[OK]"  # meanwhile
    assert_paid_once(other, free, times_received=1)
    db_lock.release()
    assert post_ipn_http(server.url, body, timeout=30).content == b"[OK]"  # the gateway's retry
    assert_paid_once(order, body, times_received=1)


def test_pgbouncer_refuses_the_startup_option_a_direct_connection_sets(
    pgbouncer: Callable[..., PgBouncer],
) -> None:
    """Why DATABASE_POOLER exists: `-c lock_timeout=...` at connect time is refused."""
    bouncer = pgbouncer()
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
        psycopg.connect(bouncer.url, options="-c lock_timeout=1000", connect_timeout=3)
