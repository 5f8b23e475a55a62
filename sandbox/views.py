"""The sandbox's pages: the index, the hosted payment page and the checkout button's assets.

Plain server-rendered HTML with CSRF-protected forms; no JavaScript needed.
The writes are in sandbox.services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from payments import money
from payments.exceptions import AmountError
from sandbox import button_image, selectors, services
from sandbox.exceptions import InvalidAmount, PaymentRefused
from sandbox.models import SandboxOrder, SandboxPayment

_METHODS: dict[str, Literal["account", "bitcoin"]] = {"account": "account", "bitcoin": "bitcoin"}
BUTTON_JS = Path(__file__).resolve().parent / "static" / "sandbox" / "js" / "button.min.js"


def _see_other(url: str) -> HttpResponseRedirect:
    """303: the browser follows with a GET."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _order(transaction: UUID) -> SandboxOrder:
    return get_object_or_404(
        SandboxOrder.objects.select_related("account"), transaction=transaction
    )


def _render_pay_page(
    request: HttpRequest, order: SandboxOrder, *, error: str = "", status: int = 200
) -> HttpResponse:
    context: dict[str, Any] = {**selectors.order_page(order), "error": error}
    notice = request.GET.get("notice", "")
    context["notice"] = {
        "confirmed": "The payment reached 6 confirmations: it is paid and credited.",
        "confirmed-short": (
            "The payment reached 6 confirmations: it is credited, but the order is not "
            "covered yet. Its notification is a partial one (no paid notification); "
            "the order stays open."
        ),
    }.get(notice, "")
    return render(request, "sandbox/pay.html", context, status=status)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "sandbox/index.html", {"orders": selectors.recent_orders()})


@require_GET
def button_link(request: HttpRequest, transaction: UUID) -> HttpResponseBase:
    """PAYMENT_HOST/<txid>, the checkout button's link: on to the payment page."""
    _order(transaction)
    return redirect("sandbox:pay", transaction=transaction)


@require_GET
def pay_page(request: HttpRequest, transaction: UUID) -> HttpResponse:
    return _render_pay_page(request, _order(transaction))


def _chosen_amount(request: HttpRequest, order: SandboxOrder) -> int:
    """The amount of bitcoins to send without an account, as chosen on the page."""
    choice = request.POST.get("amount_choice", "full")
    for option in selectors.amount_choices(order):
        if option.value == choice and option.amount_btc_int is not None:
            return option.amount_btc_int
    if choice != "custom":
        raise InvalidAmount("choose an amount to pay")
    text = request.POST.get("amount_btc", "").strip()
    try:
        return money.to_int(text, money.BTC)
    except AmountError as exc:
        raise InvalidAmount(f"Another amount: {exc}") from exc


@require_POST
def pay(request: HttpRequest, transaction: UUID) -> HttpResponse:
    """Pay, with a gateway account (instant) or bitcoins without one; then back to the shop.

    A gateway account pays exactly what the order needs (the amount fields are
    not read); only bitcoins sent without an account take the chosen amount.
    """
    order = _order(transaction)
    method = _METHODS.get(request.POST.get("method", "account"))
    try:
        if method is None:
            raise InvalidAmount("Choose how to pay.")
        amount = _chosen_amount(request, order) if method == "bitcoin" else None
        services.payment_pay(order=order, method=method, amount_btc_int=amount)
    except PaymentRefused as exc:
        status = exc.http_status
        return _render_pay_page(request, order, error=str(exc), status=status)
    return _see_other(order.return_success)


@require_POST
def cancel(request: HttpRequest, transaction: UUID) -> HttpResponse:
    order = _order(transaction)
    try:
        services.order_cancel(order=order)
    except PaymentRefused as exc:
        return _render_pay_page(request, order, error=str(exc), status=exc.http_status)
    return _see_other(order.return_failure)


@require_POST
def confirm(request: HttpRequest, transaction: UUID, payment_id: UUID) -> HttpResponse:
    """Simulate the 6 confirmations of a `partial` payment (the gateway's side)."""
    order = _order(transaction)
    payment = get_object_or_404(SandboxPayment, order=order, payment_id=payment_id)
    try:
        services.payment_confirm(payment=payment)
    except PaymentRefused as exc:
        return _render_pay_page(request, order, error=str(exc), status=exc.http_status)
    covered = services.is_covered(order, services.credited_btc(order))
    url = reverse("sandbox:pay", kwargs={"transaction": transaction})
    return _see_other(f"{url}?notice={'confirmed' if covered else 'confirmed-short'}")


@require_GET
@cache_control(public=True, max_age=3600)
def button_js(request: HttpRequest) -> HttpResponse:
    try:
        script = BUTTON_JS.read_bytes()
    except OSError as exc:  # pragma: no cover - the file ships with the app
        raise Http404("button.min.js is missing") from exc
    return HttpResponse(script, content_type="text/javascript; charset=utf-8")


@require_GET
@cache_control(public=True, max_age=86400)
def checkout_png(request: HttpRequest) -> HttpResponse:
    return HttpResponse(button_image.checkout_png(), content_type="image/png")
