"""The payments app's tables."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from payments.money import display
from payments.states import OrderStatus


class GatewayNonce(models.Model):
    """The last nonce handed out for a gateway API key, shared by every process.

    Written only by `payments.nonces.nonce_next`.
    """

    api_key = models.CharField(max_length=64, unique=True)
    last_value = models.BigIntegerField()
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "gateway nonce"

    def __str__(self) -> str:
        return f"{self.api_key}: {self.last_value}"


def _default_deadline() -> datetime:
    return timezone.now() + timedelta(seconds=settings.PAYMENTS_ORDER_TTL)


class Order(models.Model):
    """One payment the shop asked for, and its life at the gateway.

    Money is `amount_int` in the smallest unit of `currency` (see payments.money).
    `id` is random so that checkout URLs cannot be enumerated.
    """

    Status = OrderStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reference = models.CharField(max_length=100, db_index=True)
    amount_int = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=255, blank=True)
    data = models.CharField(max_length=1024, blank=True)
    # Where our success/failure pages send the payer back (the shop's pages).
    return_success = models.URLField(max_length=2000, blank=True)
    return_failure = models.URLField(max_length=2000, blank=True)
    multipay = models.BooleanField(default=False)
    instant_only = models.BooleanField(default=False)
    email = models.BooleanField(default=False)
    autosell = models.BooleanField(default=False)
    transaction = models.UUIDField(unique=True, null=True, blank=True, editable=False)
    payment_url = models.URLField(max_length=2000, blank=True, editable=False)
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.CREATED, db_index=True
    )
    failure_reason = models.TextField(blank=True)
    deadline = models.DateTimeField(default=_default_deadline)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created", "-id")
        indexes = [models.Index(fields=["status", "deadline"], name="order_status_deadline")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_int__gt=0), name="order_amount_positive"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({display(self.amount_int, self.currency)}, {self.status})"


class OrderTransition(models.Model):
    """Why an order's status changed: one row per change, written with the change."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=20, choices=OrderStatus.choices)
    to_status = models.CharField(max_length=20, choices=OrderStatus.choices)
    reason = models.CharField(max_length=255)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created", "id")

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status}: {self.reason}"


class OrderFlag(models.Model):
    """Something about an order that a person must look at."""

    class Kind(models.TextChoices):
        UNDERPAID = "underpaid", "underpaid"
        OVERPAID = "overpaid", "overpaid"
        LATE = "late", "paid late"
        DATA_MISMATCH = "data_mismatch", "data mismatch"
        UNEXPECTED_NOTIFICATION = "unexpected_notification", "unexpected notification"
        NOTIFICATION_MISSING = "notification_missing", "notification missing"
        AMOUNT_MISMATCH = "amount_mismatch", "amount mismatch"
        STUCK = "stuck", "stuck confirming"
        GATEWAY_UNCERTAIN = "gateway_uncertain", "gateway outcome unknown"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="flags")
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    detail = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_comment = models.TextField(blank=True)

    class Meta:
        ordering = ("created", "id")
        indexes = [models.Index(fields=["reviewed_at", "kind"], name="flag_open_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.detail}"


class IdempotencyKey(models.Model):
    """A shop's Idempotency-Key: the same key and body give the same order, once."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # sha256 of the request's fields
    order = models.ForeignKey(Order, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_per_owner")
        ]

    def __str__(self) -> str:
        return self.key


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

    def __str__(self) -> str:
        amount = display(self.amount_int, self.currency) if self.amount_int else "-"
        return f"{self.payment_id} {self.status} {amount}"


class Notification(models.Model):
    """The IPN inbox: every authentic notification, byte for byte, and what it did.

    One row per distinct body (`body_sha256` is unique); the same body again
    only counts up `times_received`. Rows are written before they are applied
    and survive when applying fails, so a sweep can apply them later.
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", "not applied yet"
        APPLIED = "applied", "applied"
        DUPLICATE = "duplicate", "duplicate: nothing to do"
        STALE = "stale", "stale: nothing to do"
        FLAGGED = "flagged", "flagged for review"
        UNKNOWN_TRANSACTION = "unknown_transaction", "unknown transaction"
        INVALID = "invalid", "invalid fields"
        ERROR = "error", "error while applying"

    body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64, unique=True)
    headers = models.JSONField(default=dict)  # without Rest-Sign
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    transaction = models.UUIDField(null=True, blank=True, db_index=True)
    payment_id = models.UUIDField(null=True, blank=True)
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
