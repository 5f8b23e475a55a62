"""Pages of the review admin beyond the model admins: the dashboard, flag reviews, resolutions.

Thin: they check permissions, read through payments.dashboard, write through
payments.services, and render templates under templates/admin/payments/.
Mounted by OrderAdmin.get_urls (payments/admin.py): /admin/payments/order/dashboard/,
/admin/payments/order/<id>/review/ and /admin/payments/order/<id>/resolve/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from payments import dashboard as figures
from payments import money
from payments.models import Order, OrderFlag, OrderResolution
from payments.services.dashboard import (
    SUMMARY_MAX_AGE_SECONDS,
    dashboard_summary_refresh,
    dashboard_summary_request_refresh,
)
from payments.services.resolutions import (
    TARGETS,
    ResolutionRefused,
    order_resolve,
    refundable,
    refunded,
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


# --- resolving an exceptional order ------------------------------------------------------

Action = OrderResolution.Action
FLAGS_SHOWN = 20  # an order's open flags on its resolve page (there are seldom more than a few)


def refund_currencies(order: Order) -> tuple[str, ...]:
    """What a refund of the order may be in: its own currency, or the BTC it was paid in."""
    return tuple(dict.fromkeys((order.currency, money.BTC)))


def refundable_amounts(order: Order) -> dict[str, int]:
    return {currency: refundable(order, currency) for currency in refund_currencies(order)}


def refunded_text(order: Order) -> str:
    """The order's refunds so far, one `money.display` per currency joined by "; ", or "-"."""
    totals = ((currency, refunded(order, currency)) for currency in refund_currencies(order))
    return "; ".join(money.display(n, currency) for currency, n in totals if n) or "-"


def quote_text(order: Order) -> str:
    """A fiat order's quote: the rate, the BTC expected at it, and when; or why there is none."""
    if order.quote_btc_int is None or order.quote_rate_int is None:
        return "no quote (a BTC order needs none)" if order.currency == money.BTC else "no quote"
    text = (
        f"1 BTC = {money.display(order.quote_rate_int, order.currency)}; "
        f"{money.display(order.quote_btc_int, money.BTC)} expected"
    )
    if order.quoted_at is not None:
        text += f"; quoted {timezone.localtime(order.quoted_at):%Y-%m-%d %H:%M:%S %Z}"
    return text


def resolutions_offered(order: Order, amounts: dict[str, int]) -> list[tuple[str, str]]:
    """The decisions that apply to the order now: its status allows the move, or money is
    refundable (`amounts`, from refundable_amounts). The service checks again, locked."""
    return [
        (action, label)
        for action, label in Action.choices
        if (action == Action.REFUND and any(amounts.values()))
        or (action in TARGETS and order.status in TARGETS[action][1])
    ]


class ResolveForm(forms.Form):
    """One decision on one order.

    Only the decisions that apply are shown (the widget's choices); any known
    one is accepted here, so that one that does not apply (or no longer does)
    gets the service's own refusal, which says why.
    """

    action = forms.ChoiceField(choices=Action.choices, widget=forms.RadioSelect)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        max_length=2000,
        help_text="Why. Kept in the audit trail with your name and the time, and sent to the shop.",
    )
    amount = forms.CharField(
        required=False,
        max_length=money.MAX_AMOUNT_TEXT,
        help_text="A decimal amount in the currency below, e.g. 12.50; empty: all that is "
        "still refundable in it.",
    )
    currency = forms.ChoiceField(required=False)
    reference = forms.CharField(
        required=False,
        max_length=255,
        help_text="The refund's payment reference (a transaction id, a bank reference).",
    )

    def __init__(self, data: Any, *, order: Order, offered: Sequence[tuple[str, str]]) -> None:
        super().__init__(data, initial={"currency": order.currency})
        self.order = order
        self.fields["action"].widget.choices = list(offered)
        currency = self.fields["currency"]
        assert isinstance(currency, forms.ChoiceField)
        currency.choices = [(c, c) for c in refund_currencies(order)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["currency"] = data.get("currency") or self.order.currency
        data["amount_int"] = None
        if data.get("action") != Action.REFUND:
            if data.get("amount") or data.get("reference"):
                raise ValidationError(
                    "An amount and a reference are for a refund only: choose "
                    f"“{Action.REFUND.label}” or leave them empty."
                )
        elif data.get("amount"):
            try:
                data["amount_int"] = money.to_int(data["amount"], data["currency"])
            except money.AmountError as exc:
                self.add_error("amount", str(exc))
        return data

    def decision(self) -> dict[str, Any]:
        """order_resolve's arguments from the form."""
        data = self.cleaned_data
        refund = data["action"] == Action.REFUND
        return {
            "action": data["action"],
            "reason": data["reason"],
            "amount_int": data["amount_int"],
            "currency": data["currency"] if refund else None,
            "reference": data["reference"] if refund else "",
        }


def order_resolve_view(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, object_id: str
) -> HttpResponse:
    """/admin/payments/order/<id>/resolve/: one decision on an order, with its reason.

    Reviewers only (403 for anyone else, GET or POST). A decision that is
    refused, or a form with an error, is shown again with status 400 and
    nothing written; a decision made redirects to the order's page.
    """
    order = model_admin.get_object(request, object_id)
    if order is None or not model_admin.has_view_permission(request, order):
        raise PermissionDenied
    if not can_review(request):
        raise PermissionDenied
    amounts = refundable_amounts(order)
    offered = resolutions_offered(order, amounts)
    form = ResolveForm(
        request.POST if request.method == "POST" else None, order=order, offered=offered
    )
    if form.is_bound and form.is_valid():
        try:
            resolution = order_resolve(order_id=order.pk, user=request.user, **form.decision())
        except ResolutionRefused as exc:
            form.add_error(None, str(exc))
        else:
            model_admin.message_user(request, resolved_message(resolution), messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:payments_order_change", args=[order.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Resolve order {order.reference}",
        "opts": model_admin.opts,
        "order": order,
        "amount": money.display(order.amount_int, order.currency),
        "form": form,
        "offered": offered,
        "refund_offered": Action.REFUND in dict(offered),
        "refundable": [(c, money.display(n, c)) for c, n in amounts.items()],
        "refunded": refunded_text(order),
        "quote": quote_text(order),
        "open_flags": list(order.flags.filter(reviewed_at__isnull=True)[:FLAGS_SHOWN]),
        "cancel_url": reverse("admin:payments_order_change", args=[order.pk]),
    }
    status = 400 if form.is_bound else 200
    return TemplateResponse(request, "admin/payments/resolve_order.html", context, status=status)


def resolved_message(resolution: OrderResolution) -> str:
    order = resolution.order
    if resolution.action == Action.REFUND:
        assert resolution.amount_int is not None
        done = f"Refund of {money.display(resolution.amount_int, resolution.currency)} recorded"
    else:
        done = f"{resolution.get_action_display()}: the order is now {order.get_status_display()}"
    text = f"Order {order.reference}: {done}."
    if order.open_flags:
        text += f" It still has {order.open_flags} open flag(s) to review."
    return text
