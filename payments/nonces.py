"""Nonces for the gateway's private calls: one shared, persistent, increasing counter per key.

Several processes sign with one API key, so no process's clock alone can
guarantee an increasing nonce. The counter lives in the database and each
value is at least the current time in microseconds since the epoch (what
historical clients sent, so a key they used accepts ours) and greater than
every value handed out before for the key, even after a restart with a
clock set back.

An increasing counter is not enough: two concurrent calls that take nonces 1
and 2 may reach the gateway as 2 then 1, and the gateway refuses 1 as stale.
`nonce_call_lock` is held from taking the nonce until the reply, so the key's
calls reach the gateway one at a time, in nonce order, from every process.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone

from payments.conf import payments_settings
from payments.gateway.errors import GatewayUnavailable
from payments.models import GatewayNonce

# One statement reads and writes the row under its lock (no check-then-write race),
# and holds that lock for that statement only. Portable: PostgreSQL and SQLite 3.35+.
_NEXT = (
    "UPDATE payments_gatewaynonce "
    "SET last_value = CASE WHEN last_value + 1 > %s THEN last_value + 1 ELSE %s END, "
    "updated = %s WHERE api_key = %s RETURNING last_value"
)


def _now_microseconds() -> int:
    return time.time_ns() // 1000


def nonce_next(*, api_key: str) -> int:
    """A nonce for `api_key` greater than every one returned before, in any process.

    Call it right before signing, outside any transaction of the caller's: in
    autocommit the row is locked for one statement; inside a long transaction
    the lock would be held until it commits, holding up every other caller, and
    a rollback after the HTTP call would forget a nonce the gateway has already
    seen. (Under `nonce_call_lock` on PostgreSQL it runs in the lock's own
    transaction: the key's callers are queued on the lock anyway, and that
    transaction commits whatever the call's outcome.)
    """
    now_us = _now_microseconds()
    params: tuple[int, int, datetime, str] = (now_us, now_us, timezone.now(), api_key)
    with connection.cursor() as cursor:
        cursor.execute(_NEXT, params)
        row = cursor.fetchone()
        if row is None:
            # First use of the key: create the row unless another process just did.
            GatewayNonce.objects.bulk_create(
                [GatewayNonce(api_key=api_key, last_value=0)], ignore_conflicts=True
            )
            cursor.execute(_NEXT, params)
            row = cursor.fetchone()
    return int(row[0])


# PostgreSQL: lock_timeout ran out (SQLSTATE 55P03).
_LOCK_NOT_AVAILABLE = "55P03"


@contextmanager
def nonce_call_lock(*, api_key: str, timeout: float) -> Iterator[None]:
    """Hold the key's call lock (all processes) from taking a nonce until the gateway's reply.

    Waits at most `timeout` seconds (a stuck call holds the lock for at most the
    client's timeouts), then raises GatewayUnavailable: the call was never sent.
    """
    lock = _postgres_lock if connection.vendor == "postgresql" else _file_lock
    with lock(api_key=api_key, timeout=timeout):
        yield


def _lock_id(api_key: str) -> int:
    digest = hashlib.sha256(f"payments.gateway-call:{api_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)  # advisory locks take a bigint


def _waited_too_long(timeout: float) -> GatewayUnavailable:
    return GatewayUnavailable(
        f"another call with this API key held the gateway for over {timeout:g} s",
        may_have_reached_gateway=False,
    )


@contextmanager
def _postgres_lock(*, api_key: str, timeout: float) -> Iterator[None]:
    """A transaction-level advisory lock: released by the commit, or by the connection's end.

    Transaction-level, not session-level, so that a pooler in transaction mode (PgBouncer)
    keeps the lock and its unlocking on one server connection.
    """
    failure: Exception | None = None
    with transaction.atomic():
        with connection.cursor() as cursor:
            # For this transaction only (SET LOCAL): the wait here, and the nonce row's after.
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{timeout * 1000:.0f}"])
            try:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(api_key)])
            except OperationalError as exc:
                if getattr(exc.__cause__, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                    raise
                raise _waited_too_long(timeout) from exc
        try:
            yield
        except DatabaseError:
            raise
        except Exception as exc:  # re-raised below, after the commit
            # The call failed, not the database: commit the nonce the gateway may have seen.
            failure = exc
    if failure is not None:
        raise failure


@contextmanager
def _file_lock(*, api_key: str, timeout: float) -> Iterator[None]:
    """SQLite serves one machine: a file lock (flock) there, released when its holder dies."""
    folder = Path(payments_settings.VAR_DIR) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gateway-call-{_lock_id(api_key) & 0xFFFFFFFFFFFFFFFF:016x}.lock"
    deadline = time.monotonic() + timeout
    pause = 0.001
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _waited_too_long(timeout) from None
                time.sleep(pause)  # flock cannot wait with a timeout: poll, briefly
                pause = min(pause * 2, 0.02)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
