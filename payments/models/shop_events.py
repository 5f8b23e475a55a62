"""The shop events outbox: one event per order change, a delivery per endpoint, every attempt."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from payments.models.orders import Order
from payments.models.shops import Shop
from payments.models.webhook_endpoints import WebhookEndpoint


class DeliveryState(models.TextChoices):
    """Where a delivery stands, from its delivered and given-up times and its last error.

    `failing`: not delivered yet, still retried, and its last attempt failed;
    `pending`: not delivered yet and no attempt has failed (none made yet).
    """

    PENDING = "pending", "pending"
    FAILING = "failing", "failing"
    DELIVERED = "delivered", "delivered"
    GIVEN_UP = "given_up", "given up"


class ShopEvent(models.Model):
    """An order change to POST to the shop's endpoints (the transactional outbox).

    Written in the transaction that made the change, so the event exists if
    and only if the change committed, with a ShopEventDelivery for each of
    the shop's endpoints that takes it. `id` is the event id the shop drops
    duplicates by. `body` is the JSON text exactly as sent: serialized once,
    so every endpoint and every retry gets the same bytes. A `ping` (a test
    sent to one endpoint) has no order.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="shop_events")
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="shop_events", null=True, blank=True
    )
    type = models.CharField(max_length=40, db_index=True)
    payload = models.JSONField()
    body = models.TextField()
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-created", "-id")
        indexes = [
            models.Index(fields=["shop", "created"], name="shop_event_shop_created"),
            # The events API's list by type: a rare type is not found by scanning every event.
            models.Index(fields=["shop", "type", "created"], name="shop_event_shop_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class ShopEventDelivery(models.Model):
    """One event on its way to one endpoint: the work of merchant.delivery's engine.

    `next_attempt_at` is when the next attempt may start (an attempt in
    progress pushes it forward, a lease); it is null once the delivery is
    delivered or given up. The deliveries of a disabled endpoint wait: none is
    attempted until it is enabled again.
    """

    State = DeliveryState

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(ShopEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    gives_up_at = models.DateTimeField()
    given_up_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created", "-id")
        verbose_name_plural = "shop event deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="one_delivery_per_endpoint")
        ]
        indexes = [
            models.Index(
                fields=["delivered_at", "given_up_at", "next_attempt_at"],
                name="shop_event_delivery_due",
            ),
            # An endpoint's deliveries (the admin's list per endpoint, its page).
            models.Index(fields=["endpoint", "created"], name="shop_event_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} to endpoint #{self.endpoint_id} ({self.state})"

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return DeliveryState.DELIVERED
        if self.given_up_at is not None:
            return DeliveryState.GIVEN_UP
        if self.last_error:
            return DeliveryState.FAILING
        return DeliveryState.PENDING


class ShopEventAttempt(models.Model):
    """One POST of a delivery and what came back (never the signature or the secret)."""

    delivery = models.ForeignKey(
        ShopEventDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
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
