"""The payer's pages: the checkout page with the button, and the return pages.

They show an order's live state: a small script polls the status endpoint
until the state is final; without JavaScript the page refreshes itself.
"""

from __future__ import annotations

from uuid import UUID

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from payments import money
from payments.models import Order
from payments.money import display
from payments.states import FINAL_STATES, OrderStatus

REFRESH_SECONDS = 3


def _order_context(order: Order, *, outcome: str | None = None) -> dict[str, object]:
    final = order.status in FINAL_STATES
    back = order.return_failure if outcome == "failure" else order.return_success
    return {
        "order": order,
        "amount": display(order.amount_int, order.currency),
        # A fiat order is paid in BTC: what its quote says that comes to (an estimate: the
        # gateway converts at its rate of the moment).
        "btc_estimate": (
            None if order.quote_btc_int is None else display(order.quote_btc_int, money.BTC)
        ),
        "quote_rate": (
            None if order.quote_rate_int is None else display(order.quote_rate_int, order.currency)
        ),
        "status_label": OrderStatus(order.status).label,
        "final": final,
        "refresh_seconds": None if final else REFRESH_SECONDS,
        "outcome": outcome,
        "shop_url": back or order.return_success or "/",
    }


@require_GET
def checkout(request: HttpRequest, order_id: UUID) -> HttpResponse:
    order = get_object_or_404(Order, pk=order_id)
    return render(request, "payments/checkout/checkout.html", _order_context(order))


@require_GET
def checkout_return(request: HttpRequest, order_id: UUID, outcome: str) -> HttpResponse:
    order = get_object_or_404(Order, pk=order_id)
    return render(request, "payments/checkout/return.html", _order_context(order, outcome=outcome))


@require_GET
def checkout_status(request: HttpRequest, order_id: UUID) -> JsonResponse:
    order = get_object_or_404(Order, pk=order_id)
    response = JsonResponse(
        {
            "status": order.status,
            "label": OrderStatus(order.status).label,
            "final": order.status in FINAL_STATES,
        }
    )
    response["Cache-Control"] = "no-store"
    return response
