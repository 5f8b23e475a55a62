"""What staff decided about exceptional orders: the audit trail of resolutions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from payments.models.orders import Order


class OrderResolution(models.Model):
    """A person's decision on an order, with the reason: append-only.

    Written by `payments.services.resolutions.order_resolve` in the transaction
    that acts on the order. A refund made outside the gateway is one of these:
    its amount (in the order's currency) and the payment reference of the refund;
    an order's refunded total is the sum of its refunds. `user_name` keeps the
    username should the user be deleted later.
    """

    class Action(models.TextChoices):
        ACCEPT_PAID = "accept_paid", "accept as paid"
        MARK_INVALID = "mark_invalid", "mark invalid"
        CANCEL = "cancel", "cancel"
        REFUND = "refund", "record a refund"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="resolutions")
    action = models.CharField(max_length=16, choices=Action.choices)
    reason = models.TextField()
    amount_int = models.BigIntegerField(null=True, blank=True)  # refunds
    currency = models.CharField(max_length=3, blank=True)
    reference = models.CharField(max_length=255, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_name = models.CharField(max_length=150)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("created", "id")
        indexes = [models.Index(fields=["action", "created"], name="resolution_action_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action="refund", amount_int__gt=0)
                | (~models.Q(action="refund") & models.Q(amount_int__isnull=True)),
                name="resolution_refund_amount",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.user_name}: {self.reason[:60]}"
