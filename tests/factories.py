"""Rows the tests start from, built the one way the whole suite agrees on."""

from __future__ import annotations

import uuid
from typing import Any

from payments.models import Order
from payments.states import OrderStatus


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
    return Order.objects.create(**values)
