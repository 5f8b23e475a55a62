"""What the OpenAPI schema says beyond the serializers: error answers and examples.

`error_responses(*codes)` declares an operation's error answers: one response per
status, the `ErrorOutput` body, an example per code (from `payments.api.errors.CODES`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from payments.api.error_codes import CODES
from payments.api.serializers import ErrorOutput

# Every operation: its token may be missing or refused, and it answers JSON only.
REFUSED = ("not_authenticated", "invalid_token", "token_revoked", "shop_disabled")
EVERY_OPERATION = (*REFUSED, "not_acceptable")

ORDER_ID = "0b6e3f5c-8d2a-4e1b-9f47-2c5d8a1e6b90"
TRANSACTION = "9d7c1e4a-3b6f-4c2d-8e5a-1f0b7c9d2e36"


def error_example(code: str) -> dict[str, Any]:
    """The body of `code` as the API answers it (a validation error and a failure: typical)."""
    body: dict[str, Any] = {"error": code, "detail": CODES[code].detail}
    if code == "invalid":
        body["fields"] = {
            "amount": ["Give exactly one of amount (a decimal string) or amount_int."]
        }
    if code.startswith("gateway_"):
        body["order"] = ORDER_ID
    return body


def error_responses(*codes: str) -> dict[int, OpenApiResponse]:
    """The operation's error answers: per status, the ErrorOutput body and one example a code."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(CODES[code].status, []).append(code)
    return {
        status: OpenApiResponse(
            ErrorOutput,
            description="; ".join(f"`{code}`: {CODES[code].when}" for code in named) + ".",
            examples=[
                OpenApiExample(code, value=error_example(code), summary=CODES[code].when)
                for code in named
            ],
        )
        for status, named in sorted(by_status.items())
    }


_CREATED = "2026-05-04T10:15:00.123456Z"

ORDER_EXAMPLE: dict[str, Any] = {
    "id": ORDER_ID,
    "reference": "order-42",
    "status": "awaiting_payment",
    "amount": "12.50000",
    "amount_int": 1250000,
    "currency": "USD",
    "description": "Two mugs",
    "quote": {
        "rate": "61234.50000",
        "rate_int": 6123450000,
        "btc_amount": "0.00020414",
        "btc_amount_int": 20414,
        "quoted_at": _CREATED,
    },
    "transaction": TRANSACTION,
    "payment_url": f"https://payment.gateway.example/{TRANSACTION}",
    "checkout_url": f"https://pay.shop.example/checkout/{ORDER_ID}/",
    "button_html": (
        f'<span class="mtgox" data-id="{TRANSACTION}" data-amount="12.50000" '
        f'data-currency="USD"><a href="https://payment.gateway.example/{TRANSACTION}">'
        '<img src="https://payment.gateway.example/img/mtgox-checkout.png" '
        'alt="Pay with bitcoin"></a></span>'
    ),
    "failure_reason": "",
    "created": _CREATED,
    "deadline": "2026-05-04T11:15:00.123456Z",
    "payments": [],
    "flags": [],
    "refunds": [],
}

PAID_ORDER_EXAMPLE: dict[str, Any] = {
    **ORDER_EXAMPLE,
    "status": "paid",
    "payments": [
        {
            "payment_id": "5a0c2e7f-1d3b-4f6a-9c8e-7b2d4f1a3c50",
            "status": "paid",
            "amount": "0.00020414",
            "amount_int": 20414,
            "currency": "BTC",
            "method": "bitcoin",
            "paid_at": "2026-05-04T10:31:42Z",
            "amount_pending": 0,
            "amount_valid": 20414,
            "amount_total": 20414,
            "implied_rate": "61234.500000000000",
            "source": "ipn",
        }
    ],
}

ORDER_CREATE_EXAMPLE = {
    "reference": "order-42",
    "amount": "12.50",
    "currency": "USD",
    "description": "Two mugs",
    "return_success": "https://shop.example/thanks",
    "return_failure": "https://shop.example/cart",
}
ORDER_CREATE_INT_EXAMPLE = {"reference": "order-43", "amount_int": 1500000, "currency": "JPY"}


def order_create_examples() -> list[OpenApiExample]:
    bodies = {"amount": ORDER_CREATE_EXAMPLE, "amount_int": ORDER_CREATE_INT_EXAMPLE}
    return [
        OpenApiExample(name, value=body, summary=f"Priced by {name}", request_only=True)
        for name, body in bodies.items()
    ]
