"""The dashboard's summary row: the figures that need a scan, computed away from the request.

Orders per status, revenue per day and currency, refunds per currency, open
flags and late notifications cost time in proportion to the tables. The
dashboard must stay as fast at a million orders as at ten thousand, so it
reads them from the one DashboardSummary row (payments.dashboard_figures),
and this module keeps that row up to date: when the dashboard finds it older
than `SUMMARY_MAX_AGE_SECONDS` it asks for a refresh in the background (a
Celery task, at most one queued at a time), and shows the figures with their
age meanwhile. Only the very first view, with no row yet, computes it on the
spot.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from payments.dashboard_figures import REVENUE_DAYS, SUMMARY_PK, revenue_first_day
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


def dashboard_summary_refresh(*, now: datetime | None = None) -> DashboardSummary:
    """Compute the summary's figures and store them in the one row; returns it."""
    started = time.monotonic()
    now = now or timezone.now()
    since = revenue_first_day(now)
    defaults = {
        "revenue_days": REVENUE_DAYS,
        "orders_by_status": _count_by(Order.objects.all(), "status"),
        "revenue": _revenue(since=since),
        "open_flags_by_kind": _count_by(OrderFlag.objects.filter(reviewed_at__isnull=True), "kind"),
        "figures": _figures(now=now, since=since),
    }
    summary, _ = DashboardSummary.objects.update_or_create(
        pk=SUMMARY_PK,
        defaults={
            **defaults,
            "computed_at": now,
            "duration_ms": round(1000 * (time.monotonic() - started)),
        },
    )
    cache.delete(_QUEUED_KEY)
    return summary


def _count_by(rows: QuerySet[Any], column: str) -> dict[str, int]:
    """{value of `column`: rows with it}, one GROUP BY."""
    return {row[column]: row["n"] for row in rows.order_by().values(column).annotate(n=Count("pk"))}


def _revenue(*, since: datetime) -> list[dict[str, object]]:
    """Paid payments since `since`, per day and currency: [{"day", "currency", "amount_int",
    "payments"}], read by paid_at."""
    return [
        {
            "day": row["day"].isoformat(),
            "currency": row["currency"],
            "amount_int": int(row["amount_int"]),
            "payments": row["payments"],
        }
        for row in Payment.objects.filter(
            status=Payment.Status.PAID, paid_at__gte=since, amount_int__isnull=False
        )
        .annotate(day=TruncDate("paid_at"))
        .order_by()
        .values("day", "currency")
        .annotate(amount_int=Sum("amount_int"), payments=Count("pk"))
        .order_by("day", "currency")
    ]


def _figures(*, now: datetime, since: datetime) -> dict[str, object]:
    last_day = Notification.objects.filter(received_at__gte=now - timedelta(hours=24))
    late_after = ExpressionWrapper(F("received_at") + LATE_AFTER, output_field=DateTimeField())
    return {
        "flagged_orders": Order.objects.filter(open_flags__gt=0).count(),
        "notifications_24h": last_day.count(),
        "notifications_late_24h": last_day.filter(applied_at__gt=late_after).count(),
        "refunds": _refunds(since=since),
    }


def _refunds(*, since: datetime) -> list[dict[str, object]]:
    """Refunds recorded since `since`, per currency: [{"currency", "amount_int", "refunds"}].

    Over the revenue's window, read through the index resolution_action_created.
    """
    return [
        {"currency": row["currency"], "amount_int": int(row["amount_int"]), "refunds": row["n"]}
        for row in OrderResolution.objects.filter(
            action=OrderResolution.Action.REFUND, created__gte=since
        )
        .order_by()
        .values("currency")
        .annotate(amount_int=Sum("amount_int"), n=Count("pk"))
        .order_by("currency")
    ]


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
