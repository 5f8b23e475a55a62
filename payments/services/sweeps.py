"""Periodic sweeps that keep every order's state true without anyone's help.

Each sweep walks its rows with `merchant.chunks.locked_chunks`: in keyset
order, one chunk per transaction, the chunk's rows claimed with `SELECT ...
FOR UPDATE SKIP LOCKED`, so several workers on several machines share a
sweep without doing any row twice. Each sweep keeps its own per-row work.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from merchant.chunks import locked_chunks
from payments.conf import payments_settings
from payments.models import Notification, Order, OrderFlag, Shop
from payments.services.notifications import notification_apply_safely, notifications_apply
from payments.services.orders import order_flag, orders_transition
from payments.states import OrderStatus
from payments.webhook_endpoints import enabled_endpoint_exists

logger = logging.getLogger(__name__)

Progress = Callable[[int], object]
DEFAULT_CHUNK = 500


def orders_expire_due(
    *,
    now: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Counter[str]:
    """Expire orders still awaiting payment after their deadline."""
    now = now or timezone.now()
    due = Order.objects.filter(status=OrderStatus.AWAITING_PAYMENT, deadline__lt=now)
    counts: Counter[str] = Counter()
    chunks = locked_chunks(
        due.only("pk", "deadline"), size=chunk_size, order=("deadline", "pk"), progress=progress
    )
    for chunk in chunks:
        ids = [order.pk for order in chunk]
        counts["examined"] += len(ids)
        if not dry_run:
            moved = orders_transition(
                order_ids=ids,
                expected_from=OrderStatus.AWAITING_PAYMENT,
                to=OrderStatus.EXPIRED,
                reason="nobody paid before the deadline",
            )
            counts["expired"] += len(moved)
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
    limit = now - timedelta(seconds=payments_settings.PAYMENTS_CONFIRMING_TTL)
    open_stuck_flag = OrderFlag.objects.filter(
        order=OuterRef("pk"), kind=OrderFlag.Kind.STUCK, reviewed_at__isnull=True
    )
    stuck = Order.objects.filter(status=OrderStatus.CONFIRMING, updated__lt=limit).filter(
        ~Exists(open_stuck_flag)
    )
    counts: Counter[str] = Counter()
    for chunk in locked_chunks(stuck.only("pk"), size=chunk_size, progress=progress):
        counts["examined"] += len(chunk)
        if dry_run:
            continue
        for order in chunk:
            order_flag(
                order_id=order.pk,
                kind=OrderFlag.Kind.STUCK,
                detail=f"confirming since before {limit:%Y-%m-%d %H:%M} UTC",
            )
        counts["flagged"] += len(chunk)
    return counts


def notifications_apply_pending(
    *,
    older_than_seconds: int = 60,
    chunk_size: int = 100,
    dry_run: bool = False,
    progress: Progress | None = None,
    ids: list[int] | None = None,
    include_failed: bool = True,
    limit: int | None = None,
) -> Counter[str]:
    """Apply stored notifications that were never applied (or whose applying failed).

    Young rows are left to the request that stored them (or, with
    PAYMENTS_IPN_APPLY=worker, to the worker it woke). `ids` replays those
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
    pending = pending.defer("headers")  # applying never reads them: no JSON decoded per row
    for chunk in locked_chunks(pending, size=chunk_size, progress=progress, limit=limit):
        counts["examined"] += len(chunk)
        if dry_run:
            continue
        _with_shops(chunk)
        counts.update(f"outcome:{outcome}" for outcome in _apply_chunk(chunk))
    return counts


def _apply_chunk(chunk: list[Notification]) -> list[str]:
    """Apply a locked chunk's notifications together (notifications_apply); their outcomes.

    One savepoint for the chunk. When applying fails, the chunk's savepoint is
    rolled back (with its post-commit callbacks) and each is applied again in a
    savepoint of its own, so only the failing one is stored with outcome `error`.
    """
    try:
        with transaction.atomic():
            return notifications_apply(notifications=chunk)
    except SoftTimeLimitExceeded:
        raise  # the task's time is up: the chunk stays pending for the next drain or sweep
    except Exception as exc:  # which one failed, and why, is for the second pass to record
        logger.warning(
            "applying a chunk of %d notifications failed (%s); applying them one by one",
            len(chunk),
            type(exc).__name__,
        )
    return [notification_apply_safely(notification=notification) for notification in chunk]


def _with_shops(chunk: list[Notification]) -> None:
    """Each notification's shop, one query for the chunk (applying reads it: one query each).

    Not select_related: FOR UPDATE would then lock the shops' rows too. Each shop says
    whether it has an enabled webhook endpoint (`Shop.had_enabled_endpoints`), so an
    order change of a shop without one records no event and asks nothing more.
    """
    chosen = Shop.objects.annotate(had_endpoints=enabled_endpoint_exists(shop=OuterRef("pk")))
    shops = chosen.in_bulk({notification.shop_id for notification in chunk})
    for shop in shops.values():
        shop.endpoints_seen(bool(getattr(shop, "had_endpoints")))  # noqa: B009
    for notification in chunk:
        notification.shop = shops[notification.shop_id]
