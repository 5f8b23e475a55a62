"""Shops: each with its own gateway account, API tokens and staff."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

# How long a read's "no enabled webhook endpoint" stands for an order change made with it:
# about a request's time, so that an endpoint added meanwhile is concurrent with the change.
ENDPOINTS_SEEN_SECONDS = 1.0


class Shop(models.Model):
    """One shop served by the service: its gateway account and its order defaults.

    The default shop (`is_default`, made by migration 0006) is the zero-configuration
    one: its gateway account is the environment's GATEWAY_API_KEY / GATEWAY_API_SECRET,
    so it stores neither. Every other shop stores its gateway key id, and its secret
    either sealed (`payments.secret_box`, never shown in clear) or as the name of an
    environment variable holding it.
    """

    name = models.CharField(max_length=100, unique=True)
    is_default = models.BooleanField(default=False, editable=False)
    gateway_key = models.UUIDField(
        null=True, blank=True, unique=True, verbose_name="gateway API key id"
    )
    gateway_secret_sealed = models.TextField(blank=True, editable=False)
    gateway_secret_env = models.CharField(
        max_length=100, blank=True, verbose_name="gateway secret's environment variable"
    )
    # Hosts or origins the payer may be sent back to, besides the service's own host
    # (as PAYMENTS_RETURN_HOSTS, which the default shop also allows).
    return_hosts = models.JSONField(default=list, blank=True)
    # None: the service's setting (PAYMENTS_ORDER_TTL, PAYMENTS_UNDERPAID_TOLERANCE).
    order_ttl_seconds = models.PositiveIntegerField(null=True, blank=True)
    underpaid_tolerance = models.DecimalField(max_digits=7, decimal_places=6, null=True, blank=True)
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    # Not columns: whether the shop had an enabled webhook endpoint when this instance was
    # read, for a read that asked in the same statement (`endpoints_seen`), and when.
    had_enabled_endpoints: bool | None = None
    _endpoints_seen_at: float | None = None

    class Meta:
        ordering = ("name",)
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_shop"
            ),
            models.CheckConstraint(
                condition=models.Q(is_default=True) | models.Q(gateway_key__isnull=False),
                name="shop_gateway_key_unless_default",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def endpoints_seen(self, had: bool) -> None:
        """Record what a read of this shop said of its enabled webhook endpoints, now."""
        self.had_enabled_endpoints = had
        self._endpoints_seen_at = time.monotonic()

    def had_no_endpoints_lately(self, *, not_before: float | None = None) -> bool:
        """Read within ENDPOINTS_SEEN_SECONDS, and after `not_before` (time.monotonic()),
        with no enabled endpoint: an order change made with this instance may skip the
        endpoints query (`shop_event_record`). An endpoint added since is concurrent with
        the change; past the bound (a slow gateway call in between), or read before
        `not_before` (the process's sync of the settings' endpoint), they are asked again."""
        seen = self._endpoints_seen_at
        return (
            self.had_enabled_endpoints is False
            and seen is not None
            and (not_before is None or seen > not_before)
            and time.monotonic() - seen < ENDPOINTS_SEEN_SECONDS
        )


DEFAULT_SHOP_NAME = "default"


def default_shop_id() -> int:
    """The default shop's id: what an order or notification belongs to unless told otherwise.

    Made by migration 0006; made again here should its row be gone (a flushed test
    database), so the zero-configuration shop always exists.
    """
    found = Shop.objects.filter(is_default=True).values_list("pk", flat=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Shop.objects.create(name=DEFAULT_SHOP_NAME, is_default=True).pk
    except IntegrityError:  # made meanwhile by another process
        return Shop.objects.get(is_default=True).pk


class ApiToken(models.Model):
    """A shop's API token: only its SHA-256 is stored; the token is shown once, when made."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False)  # tells tokens apart in lists
    key_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("shop", "-created")
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"


class ShopMembership(models.Model):
    """A staff user who works for a shop: sees and acts on its orders only (superusers: all)."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shop_memberships"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "user"], name="one_membership_per_shop")
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.shop}"
