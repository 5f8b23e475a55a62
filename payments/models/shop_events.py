"""The shop events outbox: one event per order change, and every attempt to deliver it."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from payments.models.orders import Order


class ShopEvent(models.Model):
    """An order change to POST to the shop (the transactional outbox).

    Written in the transaction that made the change, so the event exists if
    and only if the change committed. `id` is the event id the shop drops
    duplicates by. `body` is the JSON text exactly as sent: serialized once,
    so every retry sends the same bytes. `next_attempt_at` is when the next
    attempt may start (an attempt in progress pushes it forward, a lease);
    it is null once the event is delivered or given up.
    """

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        DELIVERED = "delivered", "delivered"
        GIVEN_UP = "given_up", "given up"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="shop_events")
    type = models.CharField(max_length=40, db_index=True)
    payload = models.JSONField()
    body = models.TextField()
    created = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    gives_up_at = models.DateTimeField()
    given_up_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ("-created", "-id")
        indexes = [
            models.Index(
                fields=["delivered_at", "given_up_at", "next_attempt_at"], name="shop_event_due"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.state})"

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return self.State.DELIVERED
        if self.given_up_at is not None:
            return self.State.GIVEN_UP
        return self.State.PENDING


class ShopEventAttempt(models.Model):
    """One POST of a shop event and what came back (never the signature or the secret)."""

    event = models.ForeignKey(ShopEvent, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(default=timezone.now)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    reply = models.CharField(max_length=200, blank=True)  # the start of the shop's answer
    ok = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("at", "id")

    def __str__(self) -> str:
        outcome = "ok" if self.ok else (str(self.http_status or "") or self.error or "failed")
        return f"attempt at {self.at:%Y-%m-%d %H:%M:%S}: {outcome}"
