"""The floor under any order-creation view: auth, insert, one signed gateway call, store.

`/bench/orders-floor/` does only what creating an order at the gateway
cannot do without, with the project's own tools: DRF's default
authentication (a shop's API token), the JSON body parsed, one INSERT of the order,
committed before the call (docs/design.md, "Creating an order"), a nonce from the shared
counter (one UPDATE ... RETURNING: the protocol requires an increasing
nonce across processes), a signed `merchant/order/create` over this thread's
kept session (payments.gateway_factory), one UPDATE storing the answer, and
a small JSON answer. No validation beyond what the conversion needs, no
transition record, no button or other output fields, no error handling.

No view that keeps the API's promises can be cheaper, so its CPU ratio
against /bench/minimal-drf/ bounds what orders_cpu can reach.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from payments import money
from payments.gateway_factory import gateway_client
from payments.models import Order
from payments.services import public_url
from payments.states import OrderStatus


class OrdersFloor(APIView):
    """DEFAULT_AUTHENTICATION_CLASSES and DEFAULT_PERMISSION_CLASSES, then the irreducible work."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        given: Any = request.data  # a JSON object: the benchmark's body
        token: Any = request.auth  # authenticated (ShopTokenRequired): an ApiToken
        currency = given["currency"]
        amount_int = money.to_int(given["amount"], currency)
        order = Order.objects.create(
            reference=given["reference"],
            amount_int=amount_int,
            currency=currency,
            shop=token.shop,
            api_token=token,
        )
        created = gateway_client(shop=token.shop).order_create(
            currency=currency,
            amount_int=amount_int,
            return_success=public_url(path=reverse("checkout-success", args=[order.id])),
            return_failure=public_url(path=reverse("checkout-failure", args=[order.id])),
            ipn=public_url(path=reverse("payments-ipn")),
        )
        Order.objects.filter(pk=order.pk).update(
            status=OrderStatus.AWAITING_PAYMENT,
            transaction=created.transaction,
            payment_url=created.payment_url,
        )
        return Response(
            {
                "id": str(order.id),
                "transaction": str(created.transaction),
                "payment_url": created.payment_url,
            },
            status=201,
        )
