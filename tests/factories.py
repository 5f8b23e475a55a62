"""Rows the tests start from, built the one way the whole suite agrees on."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone

from payments import money
from payments.models import Order
from payments.states import OrderStatus
from sandbox import currencies


def accepted_order(**fields: Any) -> Order:
    """An order the gateway already accepted (awaiting payment unless told otherwise)."""
    values: dict[str, Any] = {
        "reference": f"ref-{uuid.uuid4().hex[:8]}",
        "amount_int": 12_345_678,
        "currency": "BTC",
        "transaction": uuid.uuid4(),
        "payment_url": "http://127.0.0.1/sandbox/pay/x",
        "status": OrderStatus.AWAITING_PAYMENT,
    }
    values.update(fields)
    if values["currency"] != money.BTC and "quote_rate_int" not in values:
        # Quoted at the sandbox's rate, as order creation against the sandbox would.
        values["quote_rate_int"] = currencies.rate_int(values["currency"])
    if values.get("quote_rate_int") is not None:
        values.setdefault(
            "quote_btc_int",
            money.btc_for(values["amount_int"], values["currency"], values["quote_rate_int"]),
        )
        values.setdefault("quoted_at", timezone.now())
    return Order.objects.create(**values)
