"""Pages of the review admin beyond the model admins: the dashboard and the flag review form.

Thin: they check permissions, read through payments.dashboard, write through
payments.services, and render templates under templates/admin/payments/.
Mounted by OrderAdmin.get_urls (payments/admin.py): /admin/payments/order/dashboard/
and /admin/payments/order/<id>/review/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from payments import dashboard as figures
from payments.models import OrderFlag
from payments.services.dashboard import (
    SUMMARY_MAX_AGE_SECONDS,
    dashboard_summary_refresh,
    dashboard_summary_request_refresh,
)
from payments.services.review import MAX_SELECTED, flags_mark_reviewed

REVIEW_PERMISSION = "payments.change_orderflag"


def can_review(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(REVIEW_PERMISSION))


# --- the dashboard ---------------------------------------------------------------------


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
        "open_flags_by_kind": sorted(
            (
                (OrderFlag.Kind(kind).label if kind in OrderFlag.Kind.values else kind, n)
                for kind, n in summary.open_flags_by_kind.items()
            ),
            key=lambda pair: -pair[1],
        ),
        "flag_queue": figures.flag_queue(),
        "charts": figures.revenue_charts(summary),
        "health": figures.notification_health(summary, now=now),
        "runs": figures.last_runs(),
        "can_review": can_review(request),
    }
    return TemplateResponse(request, "admin/payments/dashboard.html", context)


# --- reviewing flags ---------------------------------------------------------------------


class ReviewForm(forms.Form):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        max_length=2000,
        help_text="What you checked and decided. Kept in the audit trail with your name "
        "and the time.",
    )


def review_flags(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    flags: QuerySet[OrderFlag],
    *,
    hidden: Sequence[tuple[str, str]] = (),
    cancel_url: str,
) -> HttpResponse | None:
    """The confirmation page of a review, and the review itself once confirmed.

    Returns None after marking (the caller redirects), or the page to show.
    `flags` are the open flags on offer (at most MAX_SELECTED); the person may
    untick some. `hidden` carries an admin action's fields through the page.
    """
    if not can_review(request):
        raise PermissionDenied
    open_flags = flags.filter(reviewed_at__isnull=True).select_related("order")
    offered = list(open_flags[: MAX_SELECTED + 1])
    if len(offered) > MAX_SELECTED:
        model_admin.message_user(
            request,
            f"More than {MAX_SELECTED} open flags chosen: review fewer at once.",
            messages.ERROR,
        )
        return None
    if not offered:
        model_admin.message_user(request, "No open flag to review.", messages.WARNING)
        return None
    form = ReviewForm(request.POST if "apply" in request.POST else None)
    chosen_ids: set[str] = {str(flag.pk) for flag in offered}
    if "apply" in request.POST:
        chosen_ids &= set(request.POST.getlist("flag"))
        if not chosen_ids:
            form.add_error(None, "Tick at least one flag.")
        if form.is_valid():
            marked = flags_mark_reviewed(
                flag_ids=[int(pk) for pk in chosen_ids],
                user=request.user,
                comment=form.cleaned_data["comment"],
            )
            model_admin.message_user(
                request, f"{len(marked)} flag(s) marked reviewed.", messages.SUCCESS
            )
            return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Mark flags reviewed",
        "opts": model_admin.opts,
        "flags": offered,
        "chosen": chosen_ids,
        "form": form,
        "hidden": hidden,
        "cancel_url": cancel_url,
    }
    return TemplateResponse(request, "admin/payments/review_flags.html", context)


def order_review_view(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, object_id: str
) -> HttpResponse:
    """/admin/payments/order/<id>/review/: review the open flags of one order."""
    order = model_admin.get_object(request, object_id)
    if order is None or not model_admin.has_view_permission(request, order):
        raise PermissionDenied
    change_url = reverse("admin:payments_order_change", args=[order.pk])
    response = review_flags(
        model_admin,
        request,
        OrderFlag.objects.filter(order=order).order_by("created", "id"),
        cancel_url=change_url,
    )
    return response or HttpResponseRedirect(change_url)


def review_action(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    what: str,
    flags_of: Callable[[list[Any]], QuerySet[OrderFlag]],
    cancel_url: str,
) -> HttpResponse | None:
    """An admin action that reviews the open flags of the selected rows (at most MAX_SELECTED)."""
    ids = selected_or_refuse(model_admin, request, queryset, what)
    if ids is None:
        return None
    return review_flags(
        model_admin,
        request,
        flags_of(ids),
        hidden=action_hidden_fields(request, action),
        cancel_url=cancel_url,
    )


def selected_or_refuse(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any], what: str
) -> list[Any] | None:
    """The selected rows' ids for an action, or None (and a message) when there are too many."""
    ids = selected_ids(queryset)
    if ids is None:
        model_admin.message_user(
            request, f"Select at most {MAX_SELECTED} {what} for this action.", messages.ERROR
        )
    return ids


def selected_ids(queryset: QuerySet[Any], limit: int = MAX_SELECTED) -> list[Any] | None:
    """The primary keys of an action's rows, or None when there are more than `limit`."""
    ids = list(queryset.order_by().values_list("pk", flat=True)[: limit + 1])
    return None if len(ids) > limit else ids


def action_hidden_fields(request: HttpRequest, action: str) -> list[tuple[str, str]]:
    """An admin action's POST fields, to carry through its confirmation page."""
    keep = ("select_across", helpers.ACTION_CHECKBOX_NAME)
    carried = [(name, value) for name in keep for value in request.POST.getlist(name)]
    return [("action", action), *carried]
