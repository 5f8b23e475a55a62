"""DATABASE_POOLER=transaction: the lock timeout set in each transaction, and the settings a
transaction pooler needs (merchant.pooling). tests/faults/test_pgbouncer.py runs the service
through a real PgBouncer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from merchant.pooling import install_lock_timeout, lock_timeout_first
from payments import deploy_checks
from payments.models import Order
from payments.testing import ipn_body, post_ipn
from tests.conftest import BASE_DIR, is_postgres, service_env


def require_postgres() -> None:
    if not is_postgres():
        pytest.skip("needs PostgreSQL: lock_timeout is PostgreSQL's")


@pytest.fixture
def pooled(settings: Any) -> Iterator[None]:
    """This process's connection as DATABASE_POOLER=transaction would have it, 1.5 s timeout."""
    require_postgres()
    settings.DATABASE_POOLER = "transaction"
    settings.DATABASE_LOCK_TIMEOUT_MS = 1500
    install_lock_timeout(sender=None, connection=connection)
    yield
    connection.execute_wrappers.remove(lock_timeout_first)


def show_lock_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        return str(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_each_transaction_sets_its_lock_timeout_first_and_only_for_itself(pooled: None) -> None:
    session = show_lock_timeout()  # autocommit: nothing set

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        inside = show_lock_timeout()
        with transaction.atomic():  # a savepoint: still the same transaction
            show_lock_timeout()

    assert inside == "1500ms" != session
    assert [q["sql"].split(' "')[0] for q in queries.captured_queries] == [
        "BEGIN",
        "SET LOCAL lock_timeout = 1500",
        "SHOW lock_timeout",
        "SAVEPOINT",
        "SHOW lock_timeout",
        "RELEASE SAVEPOINT",
        "COMMIT",
    ]
    assert show_lock_timeout() == session  # gone with the transaction, as the pooler needs


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_pooled_ipn_takes_one_statement_more_the_lock_timeout(settings: Any) -> None:
    """The IPN is one transaction (after the read of its key's shop): pooled, `SET LOCAL`
    comes first in it; nothing else changes."""
    require_postgres()
    from tests.factories import accepted_order

    def statements(order: Order) -> list[str]:
        body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
        with CaptureQueriesContext(connection) as queries:
            assert post_ipn(Client(), body).content == b"[OK]"
        return [q["sql"].split()[0].upper() for q in queries.captured_queries]

    statements(accepted_order())  # warm: the first request loads what later ones reuse
    direct = statements(accepted_order())
    settings.DATABASE_POOLER = "transaction"
    install_lock_timeout(sender=None, connection=connection)
    try:
        pooled = statements(accepted_order())
    finally:
        connection.execute_wrappers.remove(lock_timeout_first)

    begin = direct.index("BEGIN")
    assert direct[:begin] == ["SELECT"]  # the shop of the Rest-Key, outside the transaction
    assert pooled == [*direct[: begin + 1], "SET", *direct[begin + 1 :]]


def test_the_lock_timeout_is_installed_once_and_only_for_a_pooled_postgresql(
    settings: Any,
) -> None:
    class Fake:
        vendor = "postgresql"
        execute_wrappers: list[Any] = []

    fake: Any = Fake()
    settings.DATABASE_POOLER = ""
    install_lock_timeout(sender=None, connection=fake)
    assert fake.execute_wrappers == []

    settings.DATABASE_POOLER = "transaction"
    fake.execute_wrappers = [print]  # a connection.execute_wrapper() block already entered
    install_lock_timeout(sender=None, connection=fake)
    install_lock_timeout(sender=None, connection=fake)  # the connection reopened
    assert fake.execute_wrappers == [lock_timeout_first, print]

    fake.vendor, fake.execute_wrappers = "sqlite", []
    install_lock_timeout(sender=None, connection=fake)
    assert fake.execute_wrappers == []


def test_pooled_settings_keep_no_session_state() -> None:
    """What DATABASE_POOLER=transaction gives Django, as a started process reads it."""
    script = (
        "import json; from django.conf import settings as s; from django.db import connection "
        "as c; d = c.settings_dict; p = c.get_connection_params(); "
        "print(json.dumps([d['OPTIONS'].get('options'), d.get('DISABLE_SERVER_SIDE_CURSORS'), "
        "d['CONN_MAX_AGE'], p['prepare_threshold'], s.DATABASE_LOCK_TIMEOUT_MS]))"
    )

    def read(**env: str) -> list[Any]:
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=BASE_DIR,
            env=service_env(DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused", **env),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return list(json.loads(done.stdout.strip().splitlines()[-1]))

    assert read(DATABASE_POOLER="transaction", DATABASE_LOCK_TIMEOUT_MS="2500") == [
        None, True, 60, None, 2500,
    ]  # fmt: skip
    assert read(DATABASE_POOLER="", DATABASE_LOCK_TIMEOUT_MS="2500") == [
        "-c lock_timeout=2500", None, 60, None, 2500,
    ]  # fmt: skip


POSTGRES = {
    "ENGINE": "django.db.backends.postgresql",
    "OPTIONS": {},
    "DISABLE_SERVER_SIDE_CURSORS": True,
}


@pytest.mark.parametrize(
    ("pooler", "database", "ids"),
    [
        ("", {**POSTGRES, "OPTIONS": {"options": "-c lock_timeout=1"}}, []),
        ("pgbouncer", POSTGRES, ["payments.E120"]),
        ("transaction", POSTGRES, []),
        ("transaction", {**POSTGRES, "OPTIONS": {"options": "-c search_path=x"}}, ["E121"]),
        ("transaction", {**POSTGRES, "OPTIONS": {"assume_role": "shop"}}, ["E121"]),
        ("transaction", {**POSTGRES, "OPTIONS": {"prepare_threshold": "5"}}, ["E121"]),
        ("transaction", {**POSTGRES, "DISABLE_SERVER_SIDE_CURSORS": False}, ["E121"]),
        ("transaction", {"ENGINE": "django.db.backends.sqlite3"}, ["E121"]),
    ],
)
def test_the_deploy_check_refuses_session_state_behind_a_transaction_pooler(
    monkeypatch: pytest.MonkeyPatch, pooler: str, database: dict[str, Any], ids: list[str]
) -> None:
    configured = SimpleNamespace(DATABASE_POOLER=pooler, DATABASES={"default": database})
    monkeypatch.setattr(deploy_checks, "settings", configured)
    monkeypatch.setattr(deploy_checks, "payments_settings", configured)  # DATABASE_POOLER

    found = [str(message.id) for message in deploy_checks._pooler()]

    assert [i.rsplit(".", 1)[-1] for i in found] == [i.rsplit(".", 1)[-1] for i in ids]
