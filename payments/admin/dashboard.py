"""The dashboard page, /admin/payments/order/dashboard/: what came in, what is stuck, what
needs a person.

The page only: its figures are read by payments.dashboard_figures, mostly from
the summary row that payments.services.dashboard_summary keeps; the template
is templates/admin/payments/dashboard.html.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from payments import dashboard_figures as figures
from payments.admin.review import can_review
from payments.services.dashboard_summary import (
    SUMMARY_MAX_AGE_SECONDS,
    dashboard_summary_refresh,
    dashboard_summary_request_refresh,
)


def dashboard_view(model_admin: admin.ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """What came in, what is stuck, what needs a person: every figure an index read."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    summary = figures.dashboard_summary_get()
    if summary is None:  # the first view ever: nothing to show yet, compute it once
        summary = dashboard_summary_refresh(now=now)
    age = (now - summary.computed_at).total_seconds()
    refreshing = age > SUMMARY_MAX_AGE_SECONDS and dashboard_summary_request_refresh()
    by_status = figures.orders_by_status(summary)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Payments dashboard",
        "opts": model_admin.opts,
        "summary": summary,
        "summary_age_seconds": max(0, int(age)),
        "refreshing": refreshing,
        "by_status": by_status,
        "orders_total": sum(row.count for row in by_status),
        "flagged_orders": summary.figures.get("flagged_orders", 0),
        "open_flags": sum(summary.open_flags_by_kind.values()),
        "open_flags_by_kind": figures.open_flags_by_kind(summary),
        "flag_queue": figures.flag_queue(),
        "exceptional_open": figures.exceptional_open(summary),
        "exceptional_queue": figures.flag_queue(kinds=figures.EXCEPTIONAL_KINDS),
        "exceptional_kinds": ",".join(figures.EXCEPTIONAL_KINDS),
        "charts": figures.revenue_charts(summary),
        "refunds": figures.refund_totals(summary),
        "health": figures.notification_health(summary, now=now),
        "runs": figures.last_runs(),
        "can_review": can_review(request),
    }
    return TemplateResponse(request, "admin/payments/dashboard.html", context)
