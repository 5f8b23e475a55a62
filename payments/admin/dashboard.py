"""The dashboard page, /admin/payments/order/dashboard/: what came in, what is stuck, what
needs a person.

The page only: its figures are read by payments.dashboard_figures, mostly from
the summary rows that payments.services.dashboard_summary keeps; the template
is templates/admin/payments/dashboard.html.

Per shop: a shop's staff see their shops' figures and queues only (the sum of
their shops' summary rows); a superuser sees every shop together, or one shop
chosen with `?shop=<id>` (so may anyone who sees several shops). Rejected
requests to the IPN endpoint and the reconciliation sweeps are of the whole
service: shown with every shop together only, to superusers.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from payments import dashboard_figures as figures
from payments.admin.base import request_shop_ids, visible_shops
from payments.admin.filters import SHOPS_LISTED
from payments.admin.review import can_review
from payments.models import DashboardSummary, Shop
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
    shop_ids, shop = dashboard_scope(request)
    summary = figures.dashboard_summary_for(shop_ids)
    if summary is None:  # the first view ever: nothing to show yet, compute it once
        dashboard_summary_refresh(now=now)
        summary = figures.dashboard_summary_for(shop_ids)
        assert summary is not None
    age = (now - summary.computed_at).total_seconds()
    refreshing = age > SUMMARY_MAX_AGE_SECONDS and dashboard_summary_request_refresh()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Payments dashboard",
        "opts": model_admin.opts,
        "summary": summary,
        "summary_age_seconds": max(0, int(age)),
        "refreshing": refreshing,
        **_shop_context(request, shop_ids, shop),
        **_figures_context(summary, shop_ids=shop_ids, now=now),
        "can_review": can_review(request),
    }
    return TemplateResponse(request, "admin/payments/dashboard.html", context)


def dashboard_scope(request: HttpRequest) -> tuple[list[int] | None, Shop | None]:
    """The shops shown (None: every shop) and the one chosen with `?shop=<id>`, if any.

    A shop the user does not work for is a 404, as one that does not exist; an id
    that is not a number is a 400.
    """
    chosen = request.GET.get("shop", "")
    if not chosen:
        return request_shop_ids(request), None
    try:
        shop_id = int(chosen)
    except ValueError as exc:
        raise BadRequest(f"shop: {chosen!r} is not a shop's id") from exc
    shop = visible_shops(request).filter(pk=shop_id).first()
    if shop is None:
        raise Http404("No shop with this id.")
    return [shop.pk], shop


def _shop_context(
    request: HttpRequest, shop_ids: list[int] | None, shop: Shop | None
) -> dict[str, Any]:
    """Which shops the page shows, and the choice of one for whoever sees several."""
    shops = list(visible_shops(request).values_list("pk", "name")[: SHOPS_LISTED + 1])
    choices = shops[:SHOPS_LISTED] if len(shops) > 1 else []
    if shop is not None and (shop.pk, shop.name) not in choices:
        choices.append((shop.pk, shop.name))
    return {
        "shop": shop,
        "scope_label": _scope_label(shop_ids, shop, shops),
        "shop_choices": choices,
        "shop_query": f"&shop={shop.pk}" if shop is not None else "",
        "all_shops_label": "every shop" if request_shop_ids(request) is None else "all your shops",
        # Rejected requests and the sweeps are of the whole service: shown with every
        # shop together (a superuser's view: None is no one else's scope).
        "service_wide": shop_ids is None,
    }


def _scope_label(
    shop_ids: list[int] | None, shop: Shop | None, shops: list[tuple[int, str]]
) -> str:
    """What the page shows, in words: one shop, every shop, or the user's shops."""
    if shop is not None:
        return f"the shop {shop.name}"
    if shop_ids is None:
        return "every shop"
    if not shop_ids:
        return "no shop: you work for none yet (a superuser adds shop memberships)"
    if len(shop_ids) == 1 and shops:
        return f"the shop {shops[0][1]}"
    return f"your {len(shop_ids)} shops"


def _figures_context(
    summary: DashboardSummary, *, shop_ids: list[int] | None, now: Any
) -> dict[str, Any]:
    by_status = figures.orders_by_status(summary)
    return {
        "by_status": by_status,
        "orders_total": sum(row.count for row in by_status),
        "flagged_orders": summary.figures.get("flagged_orders", 0),
        "open_flags": sum(summary.open_flags_by_kind.values()),
        "open_flags_by_kind": figures.open_flags_by_kind(summary),
        "flag_queue": figures.flag_queue(shop_ids=shop_ids),
        "exceptional_open": figures.exceptional_open(summary),
        "exceptional_queue": figures.flag_queue(kinds=figures.EXCEPTIONAL_KINDS, shop_ids=shop_ids),
        "exceptional_kinds": ",".join(figures.EXCEPTIONAL_KINDS),
        "charts": figures.revenue_charts(summary),
        "refunds": figures.refund_totals(summary),
        "health": figures.notification_health(summary, now=now, shop_ids=shop_ids),
        "runs": figures.last_runs() if shop_ids is None else [],
    }
