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

from django.db import transaction
from django.db.models import BigIntegerField, F, Value
from django.db.models.functions import Greatest, Now

from payments.models import GatewayNonce


def _now_microseconds() -> int:
    return time.time_ns() // 1000


def nonce_next(*, api_key: str) -> int:
    """A nonce for `api_key` greater than every one returned before, in any process.

    Call it outside any transaction, right before signing: the row stays
    locked until the outermost transaction commits, so inside a long one it
    would hold up every other caller, and a rollback after the HTTP call
    would forget a nonce the gateway has already seen.
    """
    now_us = Value(_now_microseconds(), output_field=BigIntegerField())
    rows = GatewayNonce.objects.filter(api_key=api_key)
    with transaction.atomic(durable=False):
        # One UPDATE reads and writes the row under its lock: no check-then-write race.
        if not rows.update(last_value=Greatest(F("last_value") + 1, now_us), updated=Now()):
            # First use of the key: create the row unless another process just did.
            GatewayNonce.objects.bulk_create(
                [GatewayNonce(api_key=api_key, last_value=0)], ignore_conflicts=True
            )
            rows.update(last_value=Greatest(F("last_value") + 1, now_us), updated=Now())
        # Our transaction holds the row's lock: nobody else's value can be read here.
        return rows.values_list("last_value", flat=True).get()
