"""The order state table (docs/design.md, "Order states"): which transitions are allowed.

Pure data and one predicate; `payments.services.order_transition` is the one
function that applies them (row lock, check, write, record why).
"""

from __future__ import annotations

from django.db import models


class OrderStatus(models.TextChoices):
    CREATED = "created", "created"
    AWAITING_PAYMENT = "awaiting_payment", "awaiting payment"
    CONFIRMING = "confirming", "confirming"
    PAID = "paid", "paid"
    CANCELLED = "cancelled", "cancelled"
    EXPIRED = "expired", "expired"
    FAILED = "failed", "failed"
    # A person decided the order is void (payments.services.resolutions).
    INVALID = "invalid", "invalid"


S = OrderStatus

ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (S.CREATED, S.AWAITING_PAYMENT),  # the gateway accepted the order
        (S.CREATED, S.FAILED),  # the gateway refused it or could not be reached
        (S.AWAITING_PAYMENT, S.CONFIRMING),  # IPN partial
        (S.AWAITING_PAYMENT, S.PAID),  # IPN paid with enough money
        (S.CONFIRMING, S.PAID),
        (S.AWAITING_PAYMENT, S.CANCELLED),  # IPN cancelled
        (S.CONFIRMING, S.CANCELLED),
        (S.AWAITING_PAYMENT, S.EXPIRED),  # nobody paid before the deadline
        (S.EXPIRED, S.PAID),  # late money wins (flagged late)
        (S.CANCELLED, S.PAID),
        # A person's decisions on exceptional orders (payments.services.resolutions):
        # accepting one that is short is (X, PAID) above; these void or cancel one.
        (S.AWAITING_PAYMENT, S.INVALID),
        (S.CONFIRMING, S.INVALID),
        (S.EXPIRED, S.INVALID),
        (S.CANCELLED, S.INVALID),
    }
)

# States the payer's pages stop watching: nothing but late money moves them.
FINAL_STATES = frozenset({S.PAID, S.CANCELLED, S.EXPIRED, S.FAILED, S.INVALID})


def can_transition(current: str, target: str) -> bool:
    return (current, target) in ALLOWED_TRANSITIONS
