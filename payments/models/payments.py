"""Payments as the gateway reported them."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from payments.models.orders import Order
from payments.money import display


class Payment(models.Model):
    """One payment on an order, as the gateway reported it (`payment_id` is unique).

    Amounts are BTC integers (1E8) as the IPN gives them. For an order priced
    in another currency, `implied_rate` is the order's price per BTC that the
    paid amount implies.
    """

    class Status(models.TextChoices):
        PARTIAL = "partial", "partial (confirming)"
        PAID = "paid", "paid"
        CANCELLED = "cancelled", "cancelled"

    class Source(models.TextChoices):
        IPN = "ipn", "notification"
        RECONCILIATION = "reconciliation", "found by reconciliation"

    payment_id = models.UUIDField(unique=True)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
    status = models.CharField(max_length=16, choices=Status.choices)
    amount_int = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    method = models.CharField(max_length=32, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    amount_pending = models.BigIntegerField(null=True, blank=True)
    amount_valid = models.BigIntegerField(null=True, blank=True)
    amount_total = models.BigIntegerField(null=True, blank=True)
    implied_rate = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IPN)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created", "id")
        indexes = [
            # The admin lists payments newest first; the dashboard's revenue reads by paid_at.
            models.Index(fields=["created", "id"], name="payment_created"),
            models.Index(fields=["status", "paid_at"], name="payment_status_paid_at"),
        ]

    def __str__(self) -> str:
        amount = display(self.amount_int, self.currency) if self.amount_int else "-"
        return f"{self.payment_id} {self.status} {amount}"
