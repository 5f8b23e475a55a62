"""Periodic sweeps that keep every order's state true without anyone's help.

Each sweep walks its rows in keyset order, one chunk per transaction, and
claims the chunk's rows with `SELECT ... FOR UPDATE SKIP LOCKED`: several
workers on several machines share a sweep without doing any row twice, a
worker killed mid-chunk loses only its uncommitted chunk (its locks go with
its connection), and memory stays flat however many rows there are.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from payments.models import Notification, Order, OrderFlag
from payments.services.notifications import notification_apply_safely
from payments.services.orders import order_flag, orders_transition
from payments.states import OrderStatus

logger = logging.getLogger(__name__)

Progress = Callable[[int], object]
DEFAULT_CHUNK = 500


def _claim(rows: QuerySet[Any]) -> QuerySet[Any]:
    """Lock the chunk's rows, skipping those another worker holds (where the database can)."""
    if connection.features.has_select_for_update_skip_locked:
        return rows.select_for_update(skip_locked=True)
    return rows  # SQLite: one writer at a time already


def orders_expire_due(
    *,
    now: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Counter[str]:
    """Expire orders still awaiting payment after their deadline."""
    now = now or timezone.now()
    counts: Counter[str] = Counter()
    after: tuple[datetime, Any] | None = None
    while True:
        with transaction.atomic():
            due = Order.objects.filter(status=OrderStatus.AWAITING_PAYMENT, deadline__lt=now)
            if after is not None:
                due = due.filter(Q(deadline__gt=after[0]) | Q(deadline=after[0], pk__gt=after[1]))
            chunk = list(
                _claim(due.order_by("deadline", "pk")).values_list("deadline", "pk")[:chunk_size]
            )
            if not chunk:
                break
            after = chunk[-1]
            ids = [pk for _, pk in chunk]
            counts["examined"] += len(ids)
            if not dry_run:
                moved = orders_transition(
                    order_ids=ids,
                    expected_from=OrderStatus.AWAITING_PAYMENT,
                    to=OrderStatus.EXPIRED,
                    reason="nobody paid before the deadline",
                )
                counts["expired"] += len(moved)
        if progress:
            progress(len(chunk))
    return counts


def orders_flag_stuck(
    *,
    now: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Counter[str]:
    """Flag orders confirming for longer than PAYMENTS_CONFIRMING_TTL (once per order)."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.PAYMENTS_CONFIRMING_TTL)
    open_stuck_flag = OrderFlag.objects.filter(
        order=OuterRef("pk"), kind=OrderFlag.Kind.STUCK, reviewed_at__isnull=True
    )
    counts: Counter[str] = Counter()
    after = None
    while True:
        with transaction.atomic():
            stuck = Order.objects.filter(status=OrderStatus.CONFIRMING, updated__lt=limit).filter(
                ~Exists(open_stuck_flag)
            )
            if after is not None:
                stuck = stuck.filter(pk__gt=after)
            ids = list(_claim(stuck.order_by("pk")).values_list("pk", flat=True)[:chunk_size])
            if not ids:
                break
            after = ids[-1]
            counts["examined"] += len(ids)
            if not dry_run:
                for order_id in ids:
                    order_flag(
                        order_id=order_id,
                        kind=OrderFlag.Kind.STUCK,
                        detail=f"confirming since before {limit:%Y-%m-%d %H:%M} UTC",
                    )
                counts["flagged"] += len(ids)
        if progress:
            progress(len(ids))
    return counts


def notifications_apply_pending(
    *,
    older_than_seconds: int = 60,
    chunk_size: int = 100,
    dry_run: bool = False,
    progress: Progress | None = None,
    ids: list[int] | None = None,
    include_failed: bool = True,
) -> Counter[str]:
    """Apply stored notifications that were never applied (or whose applying failed).

    Young rows are left to the request that stored them. `ids` replays those
    notifications whatever their outcome: applying is idempotent.
    """
    if ids is not None:
        pending = Notification.objects.filter(pk__in=ids)
    else:
        outcomes = [Notification.Outcome.PENDING]
        if include_failed:
            outcomes.append(Notification.Outcome.ERROR)
        cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
        pending = Notification.objects.filter(outcome__in=outcomes, received_at__lt=cutoff)
    counts: Counter[str] = Counter()
    after = 0
    while True:
        with transaction.atomic():
            chunk = list(_claim(pending.filter(pk__gt=after).order_by("pk"))[:chunk_size])
            if not chunk:
                break
            after = chunk[-1].pk
            counts["examined"] += len(chunk)
            for notification in chunk:
                if dry_run:
                    continue
                outcome = notification_apply_safely(notification)
                counts[f"outcome:{outcome}"] += 1
        if progress:
            progress(len(chunk))
    return counts
