"""Orders, their transitions, flags and idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from payments.conf import payments_settings
from payments.models.shops import ApiToken, Shop, default_shop_id
from payments.money import BTC, display
from payments.states import OrderStatus


def _default_deadline() -> datetime:
    return timezone.now() + timedelta(seconds=payments_settings.PAYMENTS_ORDER_TTL)


class Order(models.Model):
    """One payment the shop asked for, and its life at the gateway.

    Money is `amount_int` in the smallest unit of `currency` (see payments.money).
    `id` is random so that checkout URLs cannot be enumerated.
    """

    Status = OrderStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Whose order: every read for a shop's token or staff is scoped by it.
    shop = models.ForeignKey(
        Shop, on_delete=models.PROTECT, related_name="orders", default=default_shop_id
    )
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
    # The quote of a fiat order (payments.services.quotes): the gateway's price of one BTC
    # (its ticker's `last`) in the currency's units, the BTC (1E8) that pays the order at
    # that price, and when it was read. A `paid` notification is checked against it. All
    # null for a BTC order, and for one created while the ticker could not be read.
    quote_rate_int = models.BigIntegerField(null=True, blank=True, editable=False)
    quote_btc_int = models.BigIntegerField(null=True, blank=True, editable=False)
    quoted_at = models.DateTimeField(null=True, blank=True, editable=False)
    deadline = models.DateTimeField(default=_default_deadline)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The API token that asked for it (None: made in-process or from the admin).
    api_token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    # How many of its flags nobody has reviewed yet: kept by the services (order_flag
    # counts up, flags_mark_reviewed recounts), so that "flagged" is an indexed filter.
    open_flags = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ("-created", "-id")
        indexes = [
            # The expiry sweep walks (status, deadline, id) in keyset order.
            models.Index(fields=["status", "deadline", "id"], name="order_status_deadline"),
            # A shop's orders, newest first (the API's list, the admin for a shop's staff).
            models.Index(fields=["shop", "created", "id"], name="order_shop_created"),
            # The admin's changelist filters, newest first, without a sort: an index scan.
            models.Index(fields=["status", "created", "id"], name="order_status_created"),
            models.Index(fields=["currency", "created", "id"], name="order_currency_created"),
            models.Index(
                fields=["created", "id"],
                name="order_flagged_created",
                condition=models.Q(open_flags__gt=0),
            ),
            # A shop's flagged orders (its staff's "flagged" filter and dashboard tile).
            models.Index(
                fields=["shop", "created", "id"],
                name="order_shop_flagged_created",
                condition=models.Q(open_flags__gt=0),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_int__gt=0), name="order_amount_positive"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({display(self.amount_int, self.currency)}, {self.status})"

    @property
    def quote_missing(self) -> bool:
        """A fiat order without a quote: nothing to check a BTC payment against."""
        return self.currency != BTC and self.quote_btc_int is None


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
        QUOTE_MISSING = "quote_missing", "no quote: check the amount by hand"
        QUOTE_EXPIRED = "quote_expired", "paid after the quote's window"
        INVALID_NOTIFICATION = "invalid_notification", "invalid notification"

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
        indexes = [
            models.Index(fields=["reviewed_at", "kind"], name="flag_open_kind"),
            # The dashboard's queue: the newest open flags, an index scan however many.
            models.Index(
                fields=["created", "id"],
                name="flag_open_created",
                condition=models.Q(reviewed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.detail}"


class FlagReview(models.Model):
    """The audit trail of flag reviews: who marked which flag reviewed, when, and why.

    Append-only, written by `payments.services.review.flags_mark_reviewed` in the
    transaction that sets the flag's own `reviewed_*` fields; the admin shows it
    and lets nobody change or delete it. `reviewer_name` keeps the username
    should the user be deleted later.
    """

    flag = models.ForeignKey(OrderFlag, on_delete=models.CASCADE, related_name="reviews")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="flag_reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer_name = models.CharField(max_length=150)
    comment = models.TextField()
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self) -> str:
        return f"{self.reviewer_name} reviewed {self.flag_id} at {self.created:%Y-%m-%d %H:%M}"


class IdempotencyKey(models.Model):
    """A shop's Idempotency-Key: the same key and body give the same order, once."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # sha256 of the request's fields
    order = models.ForeignKey(Order, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "key"], name="idempotency_key_per_shop")
        ]

    def __str__(self) -> str:
        return self.key
