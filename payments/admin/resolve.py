"""Resolving an exceptional order: /admin/payments/order/<id>/resolve/, one staff decision.

Reviewers only. Thin: the decision is payments.services.resolutions.order_resolve,
which checks again under a lock; the page is
templates/admin/payments/resolve_order.html. `quote_text` and `refunded_text`
are shown on the order's own page too (payments.admin.orders).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from payments import money
from payments.admin.review import can_review
from payments.exceptions import AmountError, ResolutionRefused
from payments.models import Order, OrderResolution
from payments.services.resolutions import (
    TARGETS,
    order_resolve,
    refundable,
    refunded,
)

Action = OrderResolution.Action
FLAGS_SHOWN = 20  # an order's open flags on its resolve page (there are seldom more than a few)


def refund_currencies(order: Order) -> tuple[str, ...]:
    """What a refund of the order may be in: its own currency, or the BTC it was paid in."""
    return tuple(dict.fromkeys((order.currency, money.BTC)))


def refundable_amounts(order: Order) -> dict[str, int]:
    return {
        currency: refundable(order=order, currency=currency)
        for currency in refund_currencies(order)
    }


def refunded_text(order: Order) -> str:
    """The order's refunds so far, one `money.display` per currency joined by "; ", or "-"."""
    totals = (
        (currency, refunded(order=order, currency=currency))
        for currency in refund_currencies(order)
    )
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
            except AmountError as exc:
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

    Reviewers only (403 for anyone else, GET or POST); another shop's order is
    a 404, as one that does not exist (OrderAdmin.get_object). A decision that
    is refused, or a form with an error, is shown again with status 400 and
    nothing written; a decision made redirects to the order's page.
    """
    order = model_admin.get_object(request, object_id)
    if order is None:
        raise Http404("No order with this id.")
    if not model_admin.has_view_permission(request, order):
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
