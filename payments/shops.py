"""Reads about shops: the default shop, a shop's gateway credentials, lookups by key or token.

The default shop's gateway account is the environment's (GATEWAY_API_KEY /
GATEWAY_API_SECRET, read at call time); every other shop's is stored on its row
(`payments.models.Shop`). Lookups go through unique indexes: finding the shop of
a Rest-Key or of an API token is one indexed query, however many shops there are.
`scope_to_shops` limits any queryset to some shops' rows (the admin, the dashboard).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Model, Q, QuerySet

from payments.exceptions import SecretUnreadable, ShopUnconfigured
from payments.models import ApiToken, Shop
from payments.models.shops import default_shop_id
from payments.secret_box import unseal

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class GatewayCredentials:
    """What signs a shop's gateway calls and verifies its notifications."""

    api_key: str
    api_secret: str


def shop_default() -> Shop:
    """The zero-configuration shop, whose gateway account is the environment's."""
    return Shop.objects.get(pk=default_shop_id())


def shop_gateway_credentials(*, shop: Shop) -> GatewayCredentials:
    """The shop's gateway key and secret; ShopUnconfigured when the secret cannot be read."""
    if shop.is_default:
        return GatewayCredentials(settings.GATEWAY_API_KEY, settings.GATEWAY_API_SECRET)
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
    return Shop.objects.filter(gateway_key=key, is_default=False).first()


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


def in_shops(path: str, shop_ids: list[int]) -> Q:
    """`path` (a lookup leading to the shop) is one of `shop_ids`: an equality for one shop,
    so that indexes that start with the shop serve it."""
    return Q(**{path: shop_ids[0]}) if len(shop_ids) == 1 else Q(**{f"{path}__in": shop_ids})


def scope_to_shops(queryset: QuerySet[M], *, shop_ids: list[int] | None, path: str) -> QuerySet[M]:
    """The rows of `queryset` whose shop (reached by `path`) is one of `shop_ids`.

    None: every shop (a superuser); []: no row at all (staff of no shop).
    """
    if shop_ids is None:
        return queryset
    if not shop_ids:
        return queryset.none()
    return queryset.filter(in_shops(path, shop_ids))
