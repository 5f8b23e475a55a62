"""An order as JSON: the fields the API's answer and the shop's events both start with."""

from __future__ import annotations

from typing import Any

from payments import money
from payments.models import Order


def order_summary(order: Order) -> dict[str, Any]:
    """Who the order is and what it costs: money as a decimal string and an integer."""
    return {
        "id": str(order.pk),
        "reference": order.reference,
        "status": str(order.status),
        "amount": money.amount_text(order.amount_int, order.currency),
        "amount_int": order.amount_int,
        "currency": order.currency,
    }
