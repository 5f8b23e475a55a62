"""The IPN inbox and the audit of rejected requests."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from payments.choices import NotificationOutcome
from payments.models.orders import Order
from payments.models.shops import Shop, default_shop_id


class Notification(models.Model):
    """The IPN inbox: every authentic notification, byte for byte, and what it did.

    One row per distinct body (`body_sha256` is unique); the same body again
    only counts up `times_received`. Rows are written before they are applied
    and survive when applying fails, so a sweep can apply them later.
    """

    Outcome = NotificationOutcome  # the one list: payments.choices

    # The shop whose gateway key signed it (its Rest-Key): it may touch that shop's orders only.
    shop = models.ForeignKey(
        Shop, on_delete=models.PROTECT, related_name="notifications", default=default_shop_id
    )
    body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64, unique=True)
    headers = models.JSONField(default=dict)  # without Rest-Sign
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    transaction = models.UUIDField(null=True, blank=True, db_index=True)
    payment_id = models.UUIDField(null=True, blank=True, db_index=True)  # admin search
    status = models.CharField(max_length=16, blank=True)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    outcome = models.CharField(
        max_length=24, choices=Outcome.choices, default=Outcome.PENDING, db_index=True
    )
    detail = models.CharField(max_length=500, blank=True)
    needs_review = models.BooleanField(default=False, db_index=True)
    times_received = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_received_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-received_at", "-id")
        indexes = [
            # A shop's notifications, newest first: its staff's list and dashboard.
            models.Index(fields=["shop", "received_at"], name="notification_shop_received"),
            # A shop's notifications to review (few): its dashboard's count.
            models.Index(
                fields=["shop", "received_at"],
                name="notification_shop_review",
                condition=models.Q(needs_review=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.status or '?'} {self.transaction or '-'} ({self.outcome})"

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")


class RejectedNotification(models.Model):
    """Requests to the IPN endpoint that failed verification, counted per minute.

    One row per (minute, reason, sender) however many requests came, so a
    burst of forgeries cannot flood the database.
    """

    window_start = models.DateTimeField()
    reason = models.CharField(max_length=32)
    remote_addr = models.CharField(max_length=45, blank=True)  # "" when unknown: unique-able
    count = models.PositiveIntegerField(default=1)
    sample = models.TextField(blank=True)  # the start of the first body, for a person to read
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-window_start",)
        constraints = [
            models.UniqueConstraint(
                fields=["window_start", "reason", "remote_addr"],
                name="rejected_notification_window",
            )
        ]

    def __str__(self) -> str:
        return f"{self.window_start:%Y-%m-%d %H:%M} {self.reason} x{self.count}"
