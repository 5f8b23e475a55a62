"""Shops and their API tokens: made, disabled, revoked (the commands and the admin call these)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.utils import timezone

from payments.gateway.signing import secret_valid
from payments.models import ApiToken, Shop
from payments.secret_box import seal
from payments.selectors import parse_return_host
from payments.shops import api_token_digest

TOKEN_PREFIX = "mp_"  # noqa: S105  (a marker that makes a leaked token greppable)
TOKEN_BYTES = 32


def shop_create(
    *,
    name: str,
    gateway_key: uuid.UUID,
    gateway_secret: str | None = None,
    gateway_secret_env: str = "",
    return_hosts: Sequence[str] = (),
    order_ttl_seconds: int | None = None,
    underpaid_tolerance: Decimal | None = None,
) -> Shop:
    """A new shop with its gateway account: the secret sealed, or named by an env variable.

    ValueError says what is wrong with the input (nothing is written then).
    """
    if not name.strip():
        raise ValueError("a shop needs a name")
    if (gateway_secret is None) == (not gateway_secret_env):
        raise ValueError("give the gateway secret, or the environment variable holding it")
    if gateway_secret is not None and not secret_valid(gateway_secret):
        raise ValueError("the gateway secret must be non-empty base64, as the gateway gives it")
    for entry in return_hosts:
        parse_return_host(entry)  # ValueError names what is wrong with the entry
    if underpaid_tolerance is not None and not Decimal(0) <= underpaid_tolerance < 1:
        raise ValueError("the underpaid tolerance is a fraction in [0, 1)")
    if Shop.objects.filter(name=name).exists():
        raise ValueError(f"a shop named {name!r} exists already")
    if Shop.objects.filter(gateway_key=gateway_key).exists():
        raise ValueError("another shop has this gateway key")
    return Shop.objects.create(
        name=name,
        gateway_key=gateway_key,
        gateway_secret_sealed=seal(gateway_secret) if gateway_secret is not None else "",
        gateway_secret_env=gateway_secret_env,
        return_hosts=list(return_hosts),
        order_ttl_seconds=order_ttl_seconds,
        underpaid_tolerance=underpaid_tolerance,
    )


def api_token_create(*, shop: Shop, name: str, read_only: bool = False) -> tuple[ApiToken, str]:
    """A new token for the shop, and its key: shown this once, only its SHA-256 is kept."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken.objects.create(
        shop=shop,
        name=name,
        prefix=key[: len(TOKEN_PREFIX) + 6],
        key_sha256=api_token_digest(key),
        read_only=read_only,
    )
    return token, key


def api_token_revoke(*, token: ApiToken) -> None:
    """Refuse the token from now on (kept, for the orders it made)."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


# A token's last use is written at most this often: not a write per request.
LAST_USED_RESOLUTION_SECONDS = 60


def api_token_touch(*, token: ApiToken) -> None:
    """Record that the token was used now (at most one write a minute per token)."""
    now = timezone.now()
    last = token.last_used_at
    if last is not None and (now - last).total_seconds() < LAST_USED_RESOLUTION_SECONDS:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


def shop_disable(*, shop: Shop) -> None:
    """No new orders and no API access for the shop; its notifications are still taken."""
    Shop.objects.filter(pk=shop.pk).update(active=False)
    shop.active = False
