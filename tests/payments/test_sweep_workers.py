"""Sweeps on real Celery workers: shared work done once, and a killed worker loses nothing.

Runs on whichever database and broker the suite runs on; CI runs it on
PostgreSQL (SKIP LOCKED) with Redis as well as on the embedded defaults.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from payments.models import Order, OrderTransition, ReconciliationRun
from payments.tasks import run_sweep

pytestmark = pytest.mark.worker

ORDERS = 3000
CHUNK = 50


def seed_due_orders(count: int) -> None:
    deadline = timezone.now() - timedelta(minutes=5)
    Order.objects.bulk_create(
        Order(
            reference=f"due-{n}",
            amount_int=1_000,
            currency="BTC",
            transaction=uuid.uuid4(),
            status="awaiting_payment",
            deadline=deadline,
        )
        for n in range(count)
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def assert_each_order_expired_once() -> None:
    assert not Order.objects.filter(status="awaiting_payment").exists()
    per_order = (
        OrderTransition.objects.filter(to_status="expired").values("order").annotate(n=Count("id"))
    )
    assert per_order.count() == ORDERS
    assert not per_order.filter(n__gt=1).exists()


def test_two_workers_running_the_same_sweep_handle_every_order_once(start_worker: Any) -> None:
    seed_due_orders(ORDERS)
    start_worker("sweeper-a", concurrency=1)
    start_worker("sweeper-b", concurrency=1)

    run_sweep.delay("expire", chunk_size=CHUNK)
    run_sweep.delay("expire", chunk_size=CHUNK)
    wait_until(
        lambda: ReconciliationRun.objects.filter(sweep="expire", status="done").count() == 2,
        timeout=120,
        what="both sweeps to finish",
    )

    assert_each_order_expired_once()
    runs = list(ReconciliationRun.objects.filter(sweep="expire"))
    assert sum(run.counts.get("expired", 0) for run in runs) == ORDERS
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL: both workers did part of the work at once (SKIP LOCKED shares it).
        # SQLite has one writer at a time, so there the second run may find nothing left.
        assert all(run.counts.get("expired", 0) > 0 for run in runs), [r.counts for r in runs]


def test_a_worker_killed_mid_sweep_loses_nothing_and_doubles_nothing(start_worker: Any) -> None:
    seed_due_orders(ORDERS)
    worker = start_worker("doomed", concurrency=1)

    run_sweep.delay("expire", chunk_size=CHUNK)
    wait_until(
        lambda: OrderTransition.objects.filter(to_status="expired").exists(),
        timeout=60,
        what="the sweep to start",
    )
    for pid in worker.pool_pids():
        os.kill(pid, signal.SIGKILL)  # the pool process dies mid-chunk, without cleanup
    killed_at = OrderTransition.objects.filter(to_status="expired").count()
    assert killed_at < ORDERS, "the sweep finished before it could be killed"

    # acks_late + reject_on_worker_lost: the task goes back to the queue and runs again.
    wait_until(
        lambda: not Order.objects.filter(status="awaiting_payment").exists(),
        timeout=120,
        what="the redelivered sweep to finish the work",
    )
    wait_until(
        lambda: ReconciliationRun.objects.filter(sweep="expire", status="done").exists(),
        timeout=60,
        what="the redelivered run to be recorded",
    )
    assert_each_order_expired_once()
