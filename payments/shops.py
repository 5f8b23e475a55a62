"""Reads about shops: the default shop, a shop's gateway credentials, lookups by key or token.

The default shop's gateway account is the environment's (GATEWAY_API_KEY /
GATEWAY_API_SECRET, read at call time); every other shop's is stored on its row
(`payments.models.Shop`). Lookups go through unique indexes: finding the shop of
a Rest-Key or of an API token is one indexed query, however many shops there are.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection

from payments.exceptions import SecretUnreadable, ShopUnconfigured
from payments.models import ApiToken, Shop
from payments.models.shops import default_shop_id
from payments.secret_box import unseal


@dataclass(frozen=True)
class GatewayCredentials:
    """What signs a shop's gateway calls and verifies its notifications."""

    api_key: str
    api_secret: str


def _shop_where(condition: str, params: list[Any]) -> Shop | None:
    """The shop matching an indexed `condition` (trusted SQL of this module), or None.

    Raw SQL because the IPN asks on every request, and building the queryset
    cost the ORM about twice what the query itself costs; a raw query still
    converts the columns as the ORM does.
    """
    table = connection.ops.quote_name(Shop._meta.db_table)
    sql = f"SELECT * FROM {table} WHERE {condition}"  # noqa: S608
    return next(iter(Shop.objects.raw(sql, params)), None)


def shop_default() -> Shop:
    """The zero-configuration shop, whose gateway account is the environment's.

    One indexed query (the IPN of the default shop asks for it on every request).
    """
    shop = _shop_where("is_default", [])
    return shop if shop is not None else Shop.objects.get(pk=default_shop_id())


def default_gateway_credentials() -> GatewayCredentials:
    """The default shop's account: the environment's, read without the database.

    ShopUnconfigured when GATEWAY_API_KEY or GATEWAY_API_SECRET is not set.
    """
    key, secret = settings.GATEWAY_API_KEY, settings.GATEWAY_API_SECRET
    if not (key and secret):
        raise ShopUnconfigured("the default shop: GATEWAY_API_KEY or GATEWAY_API_SECRET is not set")
    return GatewayCredentials(key, secret)


def shop_gateway_credentials(*, shop: Shop) -> GatewayCredentials:
    """The shop's gateway key and secret; ShopUnconfigured when they cannot be read
    (for the default shop: GATEWAY_API_KEY or GATEWAY_API_SECRET is not set)."""
    if shop.is_default:
        return default_gateway_credentials()
    if shop.gateway_secret_env:
        secret = os.environ.get(shop.gateway_secret_env, "")
        if not secret:
            raise ShopUnconfigured(
                f"shop {shop.name!r}: the environment variable {shop.gateway_secret_env} is empty"
            )
    else:
        try:
            secret = unseal(shop.gateway_secret_sealed)
        except SecretUnreadable as exc:
            raise ShopUnconfigured(f"shop {shop.name!r}: {exc}") from exc
    return GatewayCredentials(str(shop.gateway_key), secret)


def shop_for_gateway_key(*, rest_key: str) -> Shop | None:
    """The shop whose gateway key this is (disabled ones too: their money still arrives).

    The environment's key is the default shop's; any other is looked up by its
    unique index. None for a key that is no shop's, or not a key at all.
    """
    configured = settings.GATEWAY_API_KEY
    if configured and hmac.compare_digest(rest_key.encode(), configured.encode()):
        return shop_default()
    try:
        key = uuid.UUID(rest_key)
    except ValueError:
        return None
    prepared = Shop._meta.get_field("gateway_key").get_db_prep_value(key, connection)
    return _shop_where("gateway_key = %s AND NOT is_default", [prepared])  # its unique index


def api_token_digest(key: str) -> str:
    """What is stored of a token: its SHA-256 (tokens are long random strings, not passwords)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_token_for_key(*, key: str) -> ApiToken | None:
    """The live token with this key (not revoked, its shop active), with its shop; or None."""
    return (
        ApiToken.objects.select_related("shop")
        .filter(key_sha256=api_token_digest(key), revoked_at__isnull=True, shop__active=True)
        .first()
    )


def shop_ids_for_user(*, user: AbstractBaseUser | AnonymousUser) -> list[int] | None:
    """The ids of the shops a staff user works for; None for a superuser (every shop)."""
    if not user.is_authenticated:
        return []
    if getattr(user, "is_superuser", False):
        return None
    return list(Shop.objects.filter(memberships__user_id=user.pk).values_list("pk", flat=True))
