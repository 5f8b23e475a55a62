"""Shops: each with its own gateway account, API tokens and staff."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone


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

    # Not a column: whether the shop had an enabled webhook endpoint when this instance was
    # read, for a read that asked in the same statement (`payments.shops.api_token_for_key`);
    # None when not asked. False spares `shop_event_record` its endpoints query.
    had_enabled_endpoints: bool | None = None

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
