"""What the OpenAPI schema says beyond the serializers: error answers and examples.

`operation(...)` is drf-spectacular's `extend_schema` for the app's views;
`error_responses(*codes)` declares an operation's error answers: one response per
status, the `ErrorOutput` body, an example per code (from `payments.api.errors.CODES`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

from payments.api.error_codes import CODES
from payments.api.serializers import ErrorOutput

# Every operation: its token may be missing or refused, it answers JSON only, and a bug
# is a 500 in the one body (payments.api.errors.api_exception_handler).
REFUSED = ("not_authenticated", "invalid_token", "token_revoked", "shop_disabled")
EVERY_OPERATION = (*REFUSED, "not_acceptable", "server_error")


def enum_query(name: str, enum: str, description: str) -> OpenApiParameter:
    """A query filter whose schema is the named enum component (drf-spectacular inlines a
    parameter's enum: a generated client would get a nameless type per parameter)."""
    schema = {"$ref": f"#/components/schemas/{enum}"}
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=description)


View = TypeVar("View", bound=Callable[..., Any])


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's, also telling a list by an OpenApiResponse around a list serializer
    (a described page of results: its operation id, array and pagination parameters)."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        if serializer is None:
            serializer = self.get_response_serializers()
        if isinstance(serializer, dict) and serializer:
            main = serializer[min(serializer, key=str)]
            if isinstance(main, OpenApiResponse):
                serializer = main.response
        return bool(super()._is_list_view(serializer))


def operation(**kwargs: Any) -> Callable[[View], View]:
    """`extend_schema(**kwargs)` built on ApiAutoSchema (drf-spectacular's).

    extend_schema builds on REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS unless the view
    (or the method) already names a schema: named here, so a project that installs
    the app (whose default is DRF's own) needs no setting. A class too: the webhook's
    mocked view (payments.api.event_schema).
    """

    def decorator(target: View) -> View:
        if isinstance(target, type):
            target.schema = ApiAutoSchema()  # type: ignore[attr-defined]
        else:
            target.kwargs = {"schema": ApiAutoSchema}  # type: ignore[attr-defined]
        return extend_schema(**kwargs)(target)

    return decorator


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
