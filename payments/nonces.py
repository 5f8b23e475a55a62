"""Nonces for the gateway's private calls: one shared, persistent, increasing counter per key.

Several processes sign with one API key, so no process's clock alone can
guarantee an increasing nonce. The counter lives in the database and each
value is at least the current time in microseconds since the epoch (what
historical clients sent, so a key they used accepts ours) and greater than
every value handed out before for the key, even after a restart with a
clock set back.
"""

from __future__ import annotations

import time
from datetime import datetime

from django.db import connection
from django.utils import timezone

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

    Call it outside any transaction, right before signing: in autocommit the
    row is locked for one statement; inside a long transaction the lock would
    be held until it commits, holding up every other caller, and a rollback
    after the HTTP call would forget a nonce the gateway has already seen.
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
