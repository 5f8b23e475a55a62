"""The shop events in the OpenAPI schema: OpenAPI 3.1 `webhooks` (schema_settings.py).

The serializers only describe the payload version 2 that
payments.services.shop_events builds (tests hold the one to the other);
nothing is serialized with them.
"""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    OpenApiWebhook,
)
from rest_framework import serializers

from payments.api.openapi import operation
from payments.api.serializers import OrderOutput
from payments.choices import SHOP_EVENT_PING, SHOP_EVENT_TYPES
from payments.services.shop_events import PAYLOAD_VERSION
from payments.shop_event_signing import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER


class EventFlagOutput(serializers.Serializer):
    """Why an order was flagged for review (order.flagged)."""

    kind = serializers.CharField()
    detail = serializers.CharField()


class EventResolutionOutput(serializers.Serializer):
    """Staff's decision (order.resolved, order.refunded); the amount only for a refund."""

    action = serializers.CharField()
    reason = serializers.CharField()
    by = serializers.CharField(help_text="The staff user's name.")
    created = serializers.DateTimeField()
    amount = serializers.CharField(required=False)
    amount_int = serializers.IntegerField(required=False)
    currency = serializers.CharField(required=False)
    reference = serializers.CharField(required=False)


class ShopEventData(serializers.Serializer):
    """The event's subject: the order as the orders API answers it, and what the type adds."""

    order = OrderOutput(required=False, help_text="Every event but a ping.")
    flag = EventFlagOutput(required=False, help_text="order.flagged only.")
    resolution = EventResolutionOutput(
        required=False, help_text="order.resolved and order.refunded only."
    )


class ShopEventPayload(serializers.Serializer):
    """A shop event, payload version 2: the body POSTed to each webhook endpoint."""

    id = serializers.UUIDField(
        help_text=f"The event's id, also the {EVENT_ID_HEADER} header: the same on every "
        "attempt and every endpoint, so a shop drops an event it already handled."
    )
    type = serializers.ChoiceField(choices=[*SHOP_EVENT_TYPES, SHOP_EVENT_PING])
    version = serializers.ChoiceField(choices=[PAYLOAD_VERSION], help_text="The payload's version.")
    timestamp = serializers.DateTimeField(help_text="When the event happened (UTC).")
    # The payload's own key: DRF's metaclass takes declared fields out of the class, so it
    # does not shadow Serializer.data at run time; only the stubs see a clash.
    data = ShopEventData(help_text="Empty ({}) in a ping.")  # type: ignore[assignment]


_ORDER_EXAMPLE = {
    "id": "0b9f6a52-3c1e-4a8e-9d1b-2f4c6e8a0b1c",
    "reference": "order-1001",
    "status": "paid",
    "amount": "25.00",
    "amount_int": 2500000,
    "currency": "USD",
    "description": "Two mugs",
    "quote": {
        "rate": "50000.00",
        "rate_int": 5000000000,
        "btc_amount": "0.00050000",
        "btc_amount_int": 50000,
        "quoted_at": "2026-11-30T17:40:00Z",
    },
    "transaction": "5c0f7c1e-8a3b-4f2d-9e6a-1b2c3d4e5f60",
    "payment_url": "https://gateway.example/pay/5c0f7c1e",
    "checkout_url": "https://payments.example/checkout/0b9f6a52-3c1e-4a8e-9d1b-2f4c6e8a0b1c/",
    "button_html": '<a class="merchant-pay" href="https://gateway.example/pay/5c0f7c1e">Pay</a>',
    "failure_reason": "",
    "created": "2026-11-30T17:40:00Z",
    "deadline": "2026-11-30T17:55:00Z",
    "payments": [],
    "flags": [],
    "refunds": [],
}
EVENT_EXAMPLE = {
    "id": "7d2a4c1e-5b3f-4e6a-8c9d-0e1f2a3b4c5d",
    "type": "order.paid",
    "version": PAYLOAD_VERSION,
    "timestamp": "2026-11-30T17:45:12.345678Z",
    "data": {"order": _ORDER_EXAMPLE},
}
PING_EXAMPLE = {
    "id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    "type": SHOP_EVENT_PING,
    "version": PAYLOAD_VERSION,
    "timestamp": "2026-11-30T17:45:12.345678Z",
    "data": {},
}

_DESCRIPTION = f"""POSTed to each of the shop's webhook endpoints whose filter takes the type
(a ping to the one pinged), signed by the Standard Webhooks specification
(https://www.standardwebhooks.com/). Headers:

- `{EVENT_ID_HEADER}`: the event's `id`, the same on every retry and every endpoint;
- `{TIMESTAMP_HEADER}`: this attempt's unix seconds (verifiers refuse one over 5 minutes off);
- `{SIGNATURE_HEADER}`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")>`,
  one per secret, space-separated (two while the endpoint's secret is rotated).

Verify the raw body with a Standard Webhooks library and the endpoint's `whsec_` secret.
Any 2xx answer delivers the event; anything else is retried with backoff."""

shop_event_webhook = OpenApiWebhook(
    name="shopEvent",
    decorator=operation(
        summary="A shop event (an order changed, or a ping)",
        description=_DESCRIPTION,
        request=ShopEventPayload,
        examples=[
            OpenApiExample("order.paid", value=EVENT_EXAMPLE),
            OpenApiExample("ping", value=PING_EXAMPLE),
        ],
        responses={
            200: OpenApiResponse(description="Any 2xx: delivered (the body is not read)."),
            500: OpenApiResponse(description="Anything else: retried with backoff."),
        },
    ),
)
