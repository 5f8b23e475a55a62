"""The admin dashboard's summary: the figures that need a scan, computed away from the request.

Orders per status, revenue per day and currency, refunds per currency, open
flags and late notifications cost time in proportion to the tables. The
dashboard must stay as fast at a million orders as at ten thousand, so it
reads them from the one DashboardSummary row, and this module keeps that row
up to date: when the dashboard finds it older than `SUMMARY_MAX_AGE_SECONDS`
it asks for a refresh in the background (a Celery task, at most one queued
at a time), and shows the figures with their age meanwhile. Only the very
first view, with no row yet, computes it on the spot.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from datetime import time as clock

from django.core.cache import cache
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from payments.models import (
    DashboardSummary,
    Notification,
    Order,
    OrderFlag,
    OrderResolution,
    Payment,
)

logger = logging.getLogger(__name__)

SUMMARY_PK = 1
SUMMARY_MAX_AGE_SECONDS = 60
REVENUE_DAYS = 30
# A notification applied more than this after it was received was applied late
# (by the apply_pending sweep or a replay, not by the request that brought it).
LATE_AFTER = timedelta(seconds=60)
_QUEUED_KEY = "payments:dashboard-summary-refresh-queued"


def revenue_first_day(now: datetime, days: int = REVENUE_DAYS) -> datetime:
    """Midnight (in the current time zone) starting the revenue window of `days` days."""
    first = timezone.localtime(now).date() - timedelta(days=days - 1)
    return timezone.make_aware(datetime.combine(first, clock.min))


def dashboard_summary_refresh(*, now: datetime | None = None) -> DashboardSummary:
    """Compute the summary's figures and store them in the one row; returns it."""
    started = time.monotonic()
    now = now or timezone.now()
    orders_by_status = {
        row["status"]: row["n"]
        for row in Order.objects.order_by().values("status").annotate(n=Count("pk"))
    }
    open_flags_by_kind = {
        row["kind"]: row["n"]
        for row in OrderFlag.objects.filter(reviewed_at__isnull=True)
        .order_by()
        .values("kind")
        .annotate(n=Count("pk"))
    }
    revenue = [
        {
            "day": row["day"].isoformat(),
            "currency": row["currency"],
            "amount_int": int(row["amount_int"]),
            "payments": row["payments"],
        }
        for row in Payment.objects.filter(
            status=Payment.Status.PAID,
            paid_at__gte=revenue_first_day(now),
            amount_int__isnull=False,
        )
        .annotate(day=TruncDate("paid_at"))
        .order_by()
        .values("day", "currency")
        .annotate(amount_int=Sum("amount_int"), payments=Count("pk"))
        .order_by("day", "currency")
    ]
    last_day = Notification.objects.filter(received_at__gte=now - timedelta(hours=24))
    late_after = ExpressionWrapper(F("received_at") + LATE_AFTER, output_field=DateTimeField())
    figures = {
        "flagged_orders": Order.objects.filter(open_flags__gt=0).count(),
        "notifications_24h": last_day.count(),
        "notifications_late_24h": last_day.filter(applied_at__gt=late_after).count(),
        "refunds": _refunds(since=revenue_first_day(now)),
    }
    summary, _ = DashboardSummary.objects.update_or_create(
        pk=SUMMARY_PK,
        defaults={
            "computed_at": now,
            "duration_ms": round(1000 * (time.monotonic() - started)),
            "revenue_days": REVENUE_DAYS,
            "orders_by_status": orders_by_status,
            "revenue": revenue,
            "open_flags_by_kind": open_flags_by_kind,
            "figures": figures,
        },
    )
    cache.delete(_QUEUED_KEY)
    return summary


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
