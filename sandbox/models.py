"""What the sandbox gateway remembers: accounts, orders, payments, the ledger, IPN deliveries.

Money is always an integer in the currency's smallest unit (BTC: 1E8, see
payments.money); never a float.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class SandboxAccount(models.Model):
    """A merchant account at the gateway: an API key id and its secret."""

    login = models.CharField(max_length=64)
    api_key = models.UUIDField(unique=True, verbose_name="API key id")
    # base64 text, as the gateway hands it out; the HMAC key is its decoded bytes.
    secret = models.CharField(max_length=200)
    # The account's own id (the "Id" of 1/generic/private/info), distinct from the key.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The last nonce accepted for this key; advanced only by a conditional UPDATE
    # (see services.nonce_advance), never by read-modify-write.
    last_nonce = models.BigIntegerField(default=0)
    last_login = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "sandbox account"

    def __str__(self) -> str:
        return f"{self.login} ({self.api_key})"


class SandboxOrder(models.Model):
    """An order created by 1/generic/private/merchant/order/create."""

    class Status(models.TextChoices):
        OPEN = "open", "open"
        PAID = "paid", "paid in full"
        CANCELLED = "cancelled", "cancelled by the payer"

    transaction = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(SandboxAccount, on_delete=models.PROTECT, related_name="orders")
    currency = models.CharField(max_length=3)
    amount_int = models.BigIntegerField()
    # The BTC price quoted when the order was created (amount / rate, rounded up
    # to 1E-8); for BTC orders the amount itself.
    amount_btc_int = models.BigIntegerField()
    description = models.CharField(max_length=255, blank=True)
    return_success = models.CharField(max_length=2000)
    return_failure = models.CharField(max_length=2000)
    ipn = models.CharField(max_length=2000, blank=True)
    # Echoed in every IPN when not empty.
    data = models.TextField(blank=True)
    email = models.BooleanField(default=False)
    autosell = models.BooleanField(default=False)
    multipay = models.BooleanField(default=False)
    instant_only = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "sandbox order"
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return str(self.transaction)


class SandboxPayment(models.Model):
    """One payment on an order; each has its own payment_id (several with multipay)."""

    class Status(models.TextChoices):
        PARTIAL = "partial", "partial (confirming)"
        PAID = "paid", "paid"
        CANCELLED = "cancelled", "cancelled"

    class Method(models.TextChoices):
        ACCOUNT = "account", "gateway account (instant)"
        BITCOIN = "bitcoin", "bitcoin without an account"
        NONE = "none", "none"

    payment_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    order = models.ForeignKey(SandboxOrder, on_delete=models.PROTECT, related_name="payments")
    status = models.CharField(max_length=16, choices=Status.choices)
    method = models.CharField(max_length=16, choices=Method.choices)
    # BTC, 1E8. amount_int is what the payer sent; pending/valid/total as in the
    # `partial` IPN (unconfirmed, 6-confirmed, their sum).
    amount_int = models.BigIntegerField(default=0)
    amount_pending = models.BigIntegerField(default=0)
    amount_valid = models.BigIntegerField(default=0)
    amount_total = models.BigIntegerField(default=0)
    paid_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "sandbox payment"
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.payment_id} ({self.status})"


class LedgerEntry(models.Model):
    """One line of a merchant wallet's history (1/generic/private/wallet/history)."""

    class Type(models.TextChoices):
        IN = "in", "in"
        OUT = "out", "out"
        EARNED = "earned", "earned"
        SPENT = "spent", "spent"
        FEE = "fee", "fee"
        DEPOSIT = "deposit", "deposit"
        WITHDRAW = "withdraw", "withdraw"

    account = models.ForeignKey(SandboxAccount, on_delete=models.PROTECT, related_name="ledger")
    currency = models.CharField(max_length=3)
    # Increasing per wallet (account and currency), from 1.
    index = models.PositiveBigIntegerField()
    type = models.CharField(max_length=16, choices=Type.choices)
    value_int = models.BigIntegerField()
    balance_int = models.BigIntegerField()
    info = models.CharField(max_length=255, blank=True)
    payment = models.ForeignKey(
        SandboxPayment, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger"
    )
    transaction = models.UUIDField(null=True, blank=True)
    date = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        ordering = ["account", "currency", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "currency", "index"], name="sandbox_ledger_index_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.currency} #{self.index} {self.type} {self.value_int}"


class IpnDelivery(models.Model):
    """One notification to send: the exact body bytes, where to, and how it went."""

    # None for a deliberately wrong IPN (sandbox_pay --wrong): no payment behind it.
    payment = models.ForeignKey(
        SandboxPayment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ipn_deliveries",
    )
    order = models.ForeignKey(SandboxOrder, on_delete=models.PROTECT, related_name="ipn_deliveries")
    # The IPN's status, which is not always the payment's: a confirmed payment
    # that does not cover the order is notified as `partial`.
    status = models.CharField(max_length=16)
    # The url-encoded body, exactly the bytes POSTed (ASCII) and signed.
    body = models.TextField()
    url = models.CharField(max_length=2000)
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Not before this time may the next attempt start; an attempt in progress
    # pushes it forward (a lease). Null once delivered.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "IPN delivery"
        verbose_name_plural = "IPN deliveries"
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["delivered_at", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"IPN #{self.pk} {self.status} for order {self.order_id}"

    @property
    def body_bytes(self) -> bytes:
        return self.body.encode("ascii")


class IpnAttempt(models.Model):
    """One POST of an IPN and what came back."""

    delivery = models.ForeignKey(IpnDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    time = models.DateTimeField(default=timezone.now)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    reply = models.CharField(max_length=200, blank=True)
    ok = models.BooleanField(default=False)

    class Meta:
        verbose_name = "IPN attempt"
        ordering = ["time", "id"]

    def __str__(self) -> str:
        outcome = "ok" if self.ok else (str(self.http_status or "") or self.error or "failed")
        return f"attempt at {self.time:%Y-%m-%d %H:%M:%S}: {outcome}"
