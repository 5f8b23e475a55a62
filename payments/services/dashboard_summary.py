"""The dashboard's summary row: the figures that need a scan, computed away from the request.

Orders per status, revenue per day and currency, refunds per currency, open
flags and late notifications cost time in proportion to the tables. The
dashboard must stay as fast at a million orders as at ten thousand, so it
reads them from DashboardSummary rows (payments.dashboard_figures), and this
module keeps them up to date: when the dashboard finds them older than
`SUMMARY_MAX_AGE_SECONDS` it asks for a refresh in the background (a Celery
task, at most one queued at a time), and shows the figures with their age
meanwhile. Only the very first view, with no row yet, computes them on the
spot.

One refresh computes every shop's figures at once (each query grouped by shop
too, as many queries as for one shop), then writes one row per shop with
anything to count and one row of every shop together (their sum); a shop's
staff see their shops' rows only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from payments.dashboard_figures import (
    REVENUE_DAYS,
    SUMMED_FIGURES,
    dashboard_summary_get,
    revenue_first_day,
    summaries_merged,
)
from payments.models import (
    DashboardSummary,
    Notification,
    Order,
    OrderFlag,
    OrderResolution,
    Payment,
)

logger = logging.getLogger(__name__)

SUMMARY_MAX_AGE_SECONDS = 60
# A notification applied more than this after it was received was applied late
# (by the apply_pending sweep or a replay, not by the request that brought it).
LATE_AFTER = timedelta(seconds=60)
_QUEUED_KEY = "payments:dashboard-summary-refresh-queued"


STORED_FIELDS = (
    "computed_at", "duration_ms", "revenue_days", "orders_by_status", "revenue",
    "open_flags_by_kind", "figures",
)  # fmt: skip


def dashboard_summary_refresh(*, now: datetime | None = None) -> DashboardSummary:
    """Compute every shop's figures, store them (a row per shop and one of all shops
    together) and return the one of all shops."""
    started = time.monotonic()
    now = now or timezone.now()
    per_shop = _per_shop(now=now, since=revenue_first_day(now))
    whole = summaries_merged(
        per_shop.values(), base=DashboardSummary(computed_at=now, revenue_days=REVENUE_DAYS)
    )
    duration_ms = round(1000 * (time.monotonic() - started))
    for summary in (whole, *per_shop.values()):
        summary.duration_ms = duration_ms
    _store(whole, list(per_shop.values()), now=now)
    cache.delete(_QUEUED_KEY)
    stored = dashboard_summary_get()
    assert stored is not None
    return stored


def _store(whole: DashboardSummary, per_shop: list[DashboardSummary], *, now: datetime) -> None:
    """Write the rows in one transaction: readers see the old figures or the new ones.

    Per-shop rows are upserted on their unique shop; a shop with nothing to count
    any more loses its row (the reader counts it as zeros).
    """
    with transaction.atomic():
        values = {name: getattr(whole, name) for name in STORED_FIELDS}
        if not DashboardSummary.objects.filter(shop__isnull=True).update(**values):
            whole.save()
        DashboardSummary.objects.bulk_create(
            per_shop,
            update_conflicts=True,
            unique_fields=["shop"],
            update_fields=list(STORED_FIELDS),
        )
        DashboardSummary.objects.filter(shop__isnull=False, computed_at__lt=now).delete()


class _Rows(dict[int, DashboardSummary]):
    """Per-shop summaries being filled: a shop's row is made when it first has a figure."""

    def __init__(self, now: datetime) -> None:
        super().__init__()
        self.now = now

    def __missing__(self, shop_id: int) -> DashboardSummary:
        row = self[shop_id] = DashboardSummary(
            shop_id=shop_id,
            computed_at=self.now,
            revenue_days=REVENUE_DAYS,
            orders_by_status={},
            revenue=[],
            open_flags_by_kind={},
            figures={**dict.fromkeys(SUMMED_FIGURES, 0), "refunds": []},
        )
        return row


def _per_shop(*, now: datetime, since: datetime) -> dict[int, DashboardSummary]:
    """Every shop's figures, each query grouped by shop: as many queries as for one shop."""
    rows = _Rows(now)
    for shop, status, n in _count_by(Order.objects.all(), "shop", "status"):
        rows[shop].orders_by_status[status] = n
    open_flags = OrderFlag.objects.filter(reviewed_at__isnull=True)
    for shop, kind, n in _count_by(open_flags, "order__shop", "kind"):
        rows[shop].open_flags_by_kind[kind] = n
    for shop, row in _revenue(since=since):
        rows[shop].revenue.append(row)
    flagged = Order.objects.filter(open_flags__gt=0).order_by().values("shop")
    for flagged_row in flagged.annotate(n=Count("pk")):
        rows[flagged_row["shop"]].figures["flagged_orders"] = flagged_row["n"]
    for shop, figures in _notifications(now=now):
        rows[shop].figures.update(figures)
    for shop, row in _refunds(since=since):
        rows[shop].figures["refunds"].append(row)
    return dict(rows)


def _count_by(rows: QuerySet[Any], shop: str, column: str) -> Iterator[tuple[int, str, int]]:
    """(shop id, value of `column`, rows with both), one GROUP BY; `shop` leads to the shop."""
    for row in rows.order_by().values(shop, column).annotate(n=Count("pk")):
        yield row[shop], row[column], row["n"]


def _revenue(*, since: datetime) -> Iterator[tuple[int, dict[str, object]]]:
    """Paid payments since `since`, per shop, day and currency: (shop id, {"day", "currency",
    "amount_int", "payments"}), read by paid_at."""
    paid = Payment.objects.filter(
        status=Payment.Status.PAID, paid_at__gte=since, amount_int__isnull=False
    )
    for row in (
        paid.annotate(day=TruncDate("paid_at"))
        .order_by()
        .values("order__shop", "day", "currency")
        .annotate(amount_int=Sum("amount_int"), payments=Count("pk"))
        .order_by("order__shop", "day", "currency")
    ):
        yield (
            row["order__shop"],
            {
                "day": row["day"].isoformat(),
                "currency": row["currency"],
                "amount_int": int(row["amount_int"]),
                "payments": row["payments"],
            },
        )


def _notifications(*, now: datetime) -> Iterator[tuple[int, dict[str, int]]]:
    """Notifications received in the last 24 hours per shop, and how many were applied late."""
    late_after = ExpressionWrapper(F("received_at") + LATE_AFTER, output_field=DateTimeField())
    last_day = Notification.objects.filter(received_at__gte=now - timedelta(hours=24))
    for row in (
        last_day.order_by()
        .values("shop")
        .annotate(n=Count("pk"), late=Count("pk", filter=Q(applied_at__gt=late_after)))
    ):
        yield row["shop"], {"notifications_24h": row["n"], "notifications_late_24h": row["late"]}


def _refunds(*, since: datetime) -> Iterator[tuple[int, dict[str, object]]]:
    """Refunds recorded since `since`, per shop and currency: (shop id, {"currency",
    "amount_int", "refunds"}). Over the revenue's window, read through the index
    resolution_action_created.
    """
    for row in (
        OrderResolution.objects.filter(action=OrderResolution.Action.REFUND, created__gte=since)
        .order_by()
        .values("order__shop", "currency")
        .annotate(amount_int=Sum("amount_int"), n=Count("pk"))
        .order_by("order__shop", "currency")
    ):
        yield (
            row["order__shop"],
            {
                "currency": row["currency"],
                "amount_int": int(row["amount_int"]),
                "refunds": row["n"],
            },
        )


def dashboard_summary_request_refresh() -> bool:
    """Queue one background refresh unless one is queued already; True when it queued one.

    Never fails the caller: with the broker down the dashboard shows the
    figures it has, with their age.
    """
    from payments.tasks import refresh_dashboard_summary

    if not cache.add(_QUEUED_KEY, 1, timeout=5 * SUMMARY_MAX_AGE_SECONDS):
        return False
    try:
        refresh_dashboard_summary.apply_async(retry=False)
    except Exception as exc:  # the broker is down
        cache.delete(_QUEUED_KEY)
        logger.warning("dashboard summary refresh not queued (%s)", type(exc).__name__)
        return False
    return True
