"""Input validation and output shapes of the orders API.

drf-spectacular publishes these classes' docstrings and help texts in the OpenAPI
schema: they are written for the API's readers; notes for this code are comments.
"""

from __future__ import annotations

import copy
from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from payments import money
from payments.exceptions import AmountError
from payments.models import Order, OrderFlag, OrderResolution, Payment
from payments.order_json import order_summary
from payments.selectors import return_host_allowed
from payments.services import NewOrder, public_url
from payments.templatetags.checkout import button_html


@extend_schema_field(OpenApiTypes.STR)
class DecimalStringField(serializers.Field):
    # A decimal amount sent as a string ("12.50"); a JSON number would pass through a float.

    default_error_messages = {"not_a_string": 'Send the amount as a string, such as "12.50".'}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return data

    def to_representation(self, value: Any) -> str:
        return str(value)


class ReturnUrlAllowed:
    """A return URL on the service's own host or one of the calling shop's return hosts.

    The shop is the serializer's context["shop"] (the API token's shop).
    """

    requires_context = True

    def __call__(self, url: str, field: serializers.Field) -> None:
        shop = field.context["shop"]
        if not return_host_allowed(url, shop=shop):
            source = "PAYMENTS_RETURN_HOSTS" if shop.is_default else "the shop's return hosts"
            raise serializers.ValidationError(
                f"This host is not allowed for return URLs ({source})."
            )


class OrderCreateInput(serializers.Serializer):
    """A new order: give exactly one of `amount` and `amount_int`.

    Return URLs must be on the service's host or one of the shop's return hosts.
    """

    # context["shop"]: the calling token's shop, whose return hosts apply.

    reference = serializers.CharField(max_length=100)
    amount = DecimalStringField(required=False, help_text='Decimal string, e.g. "12.50".')
    amount_int = serializers.IntegerField(
        required=False, min_value=1, max_value=money.MAX_AMOUNT_INT,
        help_text="Integer in the currency's smallest unit (BTC 1E8, JPY/SEK 1E3, fiat 1E5).",
    )  # fmt: skip
    currency = serializers.ChoiceField(choices=money.CURRENCIES)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    # The metaclass moves fields out of the class, so this does not hide Serializer.data.
    data = serializers.CharField(  # type: ignore[assignment]
        max_length=1024, required=False, allow_blank=True
    )
    return_success = serializers.URLField(
        max_length=2000, required=False, validators=[ReturnUrlAllowed()]
    )
    return_failure = serializers.URLField(
        max_length=2000, required=False, validators=[ReturnUrlAllowed()]
    )
    multipay = serializers.BooleanField(default=False)
    instant_only = serializers.BooleanField(default=False)
    email = serializers.BooleanField(default=False)
    autosell = serializers.BooleanField(default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        amount, amount_int = attrs.pop("amount", None), attrs.get("amount_int")
        if (amount is None) == (amount_int is None):
            raise serializers.ValidationError(
                {"amount": "Give exactly one of amount (a decimal string) or amount_int."}
            )
        if amount is not None and "currency" in attrs:
            try:
                attrs["amount_int"] = money.to_int(amount, attrs["currency"])
            except AmountError as exc:
                raise serializers.ValidationError({"amount": str(exc)}) from exc
        return attrs

    def to_new_order(self) -> NewOrder:
        return NewOrder(**self.validated_data)

    def get_fields(self) -> dict[str, serializers.Field]:
        # DRF deep-copies every declared field for each instance: half of validating a
        # body. These fields are flat (no child fields) and keep nothing per request but
        # what `bind` sets on the copy, so a shallow copy of each serves as well.
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


class PaymentOutput(serializers.ModelSerializer):
    """A payment the gateway notified (or reconciliation found) for the order."""

    amount = serializers.SerializerMethodField()

    class Meta:
        model = Payment
        fields = (
            "payment_id", "status", "amount", "amount_int", "currency", "method", "paid_at",
            "amount_pending", "amount_valid", "amount_total", "implied_rate", "source",
        )  # fmt: skip
        read_only_fields = fields

    def get_amount(self, payment: Payment) -> str | None:
        if payment.amount_int is None or not payment.currency:
            return None
        return money.amount_text(payment.amount_int, payment.currency)


class FlagOutput(serializers.ModelSerializer):
    """Something about the order that a person should look at (`reviewed` once they did)."""

    reviewed = serializers.SerializerMethodField()

    class Meta:
        model = OrderFlag
        fields = ("kind", "detail", "created", "reviewed")
        read_only_fields = fields

    def get_reviewed(self, flag: OrderFlag) -> bool:
        return flag.reviewed_at is not None


class QuoteOutput(serializers.Serializer):
    """A fiat order's quote: the gateway's price of 1 BTC then, and the BTC that pays the order."""

    rate = serializers.CharField(help_text="The order's currency per BTC, a decimal string.")
    rate_int = serializers.IntegerField()
    btc_amount = serializers.CharField(help_text="The BTC that pays the order at that rate.")
    btc_amount_int = serializers.IntegerField()
    quoted_at = serializers.DateTimeField()


class RefundOutput(serializers.Serializer):
    """A refund made outside the gateway, recorded by staff."""

    amount = serializers.CharField()
    amount_int = serializers.IntegerField()
    currency = serializers.CharField()
    reference = serializers.CharField()
    reason = serializers.CharField()
    created = serializers.DateTimeField()


class OrderOutput(serializers.ModelSerializer):
    """An order of the calling shop, with its payments, flags and refunds."""

    # `new=True` in the context: made by this request. The declared fields are the
    # contract (the OpenAPI schema) and nothing else: `order_representation` builds every
    # answer, without a field per value (tests hold its keys to these fields and its
    # output to the schema).

    amount = serializers.CharField(read_only=True, help_text='Decimal string, e.g. "12.50000".')
    currency = serializers.ChoiceField(choices=money.CURRENCIES, read_only=True)
    checkout_url = serializers.CharField(read_only=True)
    button_html = serializers.CharField(read_only=True)
    quote = QuoteOutput(allow_null=True, read_only=True)
    payments = PaymentOutput(many=True, read_only=True)
    flags = FlagOutput(many=True, read_only=True)
    refunds = RefundOutput(many=True, read_only=True)

    class Meta:
        model = Order
        fields = (
            "id", "reference", "status", "amount", "amount_int", "currency", "description",
            "quote", "transaction", "payment_url", "checkout_url", "button_html",
            "failure_reason", "created", "deadline", "payments", "flags", "refunds",
        )  # fmt: skip
        # Output only: every field is in every answer (the schema marks them required).
        read_only_fields = fields

    def to_representation(self, instance: Order) -> dict[str, Any]:
        return order_representation(instance, new=bool(self.context.get("new")))


_DATETIME = serializers.DateTimeField()  # DRF's own format and time zone, built once


def order_representation(order: Order, *, new: bool = False) -> dict[str, Any]:
    """OrderOutput's fields, in its order. An order `new` in this request has no payments or
    flags yet (they come from notifications and reviews of an order the gateway has): no query.
    """
    return {
        **order_summary(order),
        "description": order.description,
        "quote": _quote(order),
        "transaction": None if order.transaction is None else str(order.transaction),
        "payment_url": order.payment_url,
        "checkout_url": public_url(path=reverse("checkout", args=[order.id])),
        "button_html": str(button_html(order)),
        "failure_reason": order.failure_reason,
        "created": _DATETIME.to_representation(order.created),
        "deadline": _DATETIME.to_representation(order.deadline),
        "payments": [] if new else PaymentOutput(many=True).to_representation(order.payments),
        # A new order's only possible flag: its quote could not be read.
        "flags": (
            []
            if new and not order.quote_missing
            else FlagOutput(many=True).to_representation(order.flags)
        ),
        "refunds": [] if new else _refunds(order),
    }


def _quote(order: Order) -> dict[str, Any] | None:
    if order.quote_rate_int is None or order.quote_btc_int is None or order.quoted_at is None:
        return None
    return {
        "rate": money.amount_text(order.quote_rate_int, order.currency),
        "rate_int": order.quote_rate_int,
        "btc_amount": money.amount_text(order.quote_btc_int, money.BTC),
        "btc_amount_int": order.quote_btc_int,
        "quoted_at": _DATETIME.to_representation(order.quoted_at),
    }


def _refunds(order: Order) -> list[dict[str, Any]]:
    return [
        _refund(r) for r in order.resolutions.all() if r.action == OrderResolution.Action.REFUND
    ]


def _refund(resolution: OrderResolution) -> dict[str, Any]:
    assert resolution.amount_int is not None
    return {
        "amount": money.amount_text(resolution.amount_int, resolution.currency),
        "amount_int": resolution.amount_int,
        "currency": resolution.currency,
        "reference": resolution.reference,
        "reason": resolution.reason,
        "created": _DATETIME.to_representation(resolution.created),
    }


class ErrorOutput(serializers.Serializer):
    """Every error answer of the API (4xx and 5xx)."""

    error = serializers.CharField(
        help_text="What went wrong, for programs: a code such as `invalid`, `invalid_token`, "
        "`not_found`, `throttled` or `gateway_timeout` (the list is in the README). "
        "New codes may be added: treat an unknown one by its HTTP status."
    )
    detail = serializers.CharField(help_text="What went wrong, for people.")
    # The metaclass moves fields out of the class, so this does not hide Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Only for `invalid`: each field's messages (`non_field_errors`: the request's).",
    )
    order = serializers.UUIDField(
        required=False,
        help_text="Only for a gateway failure: the order, recorded as failed.",
    )
