"""Two drains whose chunks hold the same two orders in opposite arrival order: no deadlock.

Locked in arrival order, chunk A (order X, then Y) and chunk B (Y, then X)
would each wait for the other's lock, and PostgreSQL would break the deadlock
after deadlock_timeout by failing one of them (whose chunk is then applied
again one by one). A chunk's orders are locked in one statement, sorted by
transaction (ApplyBatch.locked), so the second drain waits for the first and
both apply at once. Row locks are PostgreSQL's: SQLite lets one writer in at a
time, so there is nothing to show.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection, connections

from payments.models import Notification, Order
from payments.services.apply_batch import ApplyBatch
from payments.services.sweeps import notifications_apply_pending
from payments.testing import ipn_body

pytestmark = pytest.mark.django_db(transaction=True)

MEET_SECONDS = 3.0  # how long a drain holding its first order waits for the other's first


def _stored(order: Order, n: int) -> int:
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    return Notification.objects.create(body=body, body_sha256=f"{n:x}" * 64).pk


def test_two_drains_holding_the_same_orders_do_not_deadlock(
    make_order: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks and deadlocks are PostgreSQL's; SQLite has one writer at a time")
    x, y = make_order(reference="x"), make_order(reference="y")
    chunk_a = [_stored(x, 1), _stored(y, 2)]  # arrival order: X, then Y
    chunk_b = [_stored(y, 3), _stored(x, 4)]  # Y, then X
    # Each drain, once it holds its orders, waits for the other to hold its own (or for
    # MEET_SECONDS, when the other is waiting for those same locks).
    first_locks = threading.Barrier(2, timeout=MEET_SECONDS)
    locks: Counter[int] = Counter()
    real_locked = ApplyBatch.locked

    def locked_then_meet(**kwargs: Any) -> ApplyBatch:
        batch = real_locked(**kwargs)
        locks[threading.get_ident()] += 1
        if locks[threading.get_ident()] == 1:
            # Broken when the other drain is waiting for this one's lock: carry on.
            with contextlib.suppress(threading.BrokenBarrierError):
                first_locks.wait()
        return batch

    monkeypatch.setattr(ApplyBatch, "locked", locked_then_meet)
    counts: dict[str, Counter[str]] = {}

    def drain(name: str, ids: list[int]) -> None:
        try:
            counts[name] = notifications_apply_pending(ids=ids, older_than_seconds=0)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=drain, args=(name, ids))
        for name, ids in (("a", chunk_a), ("b", chunk_b))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    failed_chunks = [r.getMessage() for r in caplog.records if "applying a chunk" in r.getMessage()]
    assert failed_chunks == [], "a chunk was rolled back (a deadlock) and applied again"
    assert counts["a"]["examined"] == counts["b"]["examined"] == 2
    assert not Notification.objects.filter(outcome__in=["pending", "error"]).exists()
    for order in (x, y):
        order.refresh_from_db()
        assert order.status == "paid"
        assert list(order.transitions.values_list("to_status", flat=True)) == ["paid"]
