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
from functools import cache
from typing import Any, TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import Count, Model, OuterRef, Q, QuerySet

from payments.conf import payments_settings
from payments.exceptions import SecretUnreadable, ShopUnconfigured
from payments.models import ApiToken, Order, Shop, WebhookEndpoint
from payments.models.shops import default_shop_id
from payments.secret_box import unseal
from payments.webhook_endpoints import enabled_endpoint_exists

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class GatewayCredentials:
    """What signs a shop's gateway calls and verifies its notifications."""

    api_key: str
    api_secret: str


def _shop_where(condition: str, params: list[Any], *, endpoints: bool = False) -> Shop | None:
    """The shop matching an indexed `condition` (trusted SQL of this module), or None.

    Raw SQL because the IPN asks on every request, and building the queryset
    cost the ORM about twice what the query itself costs; a raw query still
    converts the columns as the ORM does. With `endpoints`, the same statement
    says whether the shop has an enabled webhook endpoint
    (`Shop.had_enabled_endpoints`), for a caller that uses the shop at once (a
    notification): the order change it makes then records its event without a
    query of its own when the shop has none.
    """
    quote = connection.ops.quote_name
    table = quote(Shop._meta.db_table)
    flag = ""
    if endpoints:
        endpoint_table = quote(WebhookEndpoint._meta.db_table)
        flag = (
            f", EXISTS (SELECT 1 FROM {endpoint_table} e "  # noqa: S608  (quoted names only)
            "WHERE e.shop_id = s.id AND e.enabled) AS had_enabled_endpoints"
        )
    sql = f"SELECT s.*{flag} FROM {table} s WHERE {condition}"  # noqa: S608
    shop = next(iter(Shop.objects.raw(sql, params)), None)
    if shop is not None and endpoints:  # SQLite answers EXISTS with 0 or 1
        shop.endpoints_seen(bool(shop.had_enabled_endpoints))
    return shop


def shop_default() -> Shop:
    """The zero-configuration shop, whose gateway account is the environment's.

    One indexed query (the IPN of the default shop asks for it on every request).
    """
    shop = _shop_where("s.is_default", [])
    return shop if shop is not None else Shop.objects.get(pk=default_shop_id())


def default_gateway_credentials() -> GatewayCredentials:
    """The default shop's account: the environment's, read without the database.

    ShopUnconfigured when GATEWAY_API_KEY or GATEWAY_API_SECRET is not set.
    """
    key, secret = payments_settings.GATEWAY_API_KEY, payments_settings.GATEWAY_API_SECRET
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
    configured = payments_settings.GATEWAY_API_KEY
    if configured and hmac.compare_digest(rest_key.encode(), configured.encode()):
        return _shop_where("s.is_default", [], endpoints=True) or shop_default()
    try:
        key = uuid.UUID(rest_key)
    except ValueError:
        return None
    prepared = Shop._meta.get_field("gateway_key").get_db_prep_value(key, connection)
    by_key = "s.gateway_key = %s AND NOT s.is_default"  # its unique index
    return _shop_where(by_key, [prepared], endpoints=True)


def api_token_digest(key: str) -> str:
    """What is stored of a token: its SHA-256 (tokens are long random strings, not passwords)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@cache
def _live_tokens() -> QuerySet[ApiToken]:
    """Live tokens with their shop and whether it has an enabled webhook endpoint.

    Built once per process (never evaluated itself: each lookup filters a clone of it):
    building the EXISTS subquery cost as much as the rest of the lookup.
    """
    return (
        ApiToken.objects.select_related("shop")
        .filter(revoked_at__isnull=True, shop__active=True)
        .annotate(shop_endpoints=enabled_endpoint_exists(shop=OuterRef("shop_id")))
    )


def api_token_for_key(*, key: str) -> ApiToken | None:
    """The live token with this key (not revoked, its shop active), with its shop; or None.

    The same statement says whether the shop has an enabled webhook endpoint
    (`Shop.had_enabled_endpoints`): an order the request moves then records its event
    without a query of its own when the shop has none.
    """
    token = _live_tokens().filter(key_sha256=api_token_digest(key)).first()
    if token is not None:
        # An annotation of _live_tokens, which the model's type does not declare.
        token.shop.endpoints_seen(bool(getattr(token, "shop_endpoints")))  # noqa: B009
    return token


def api_token_refusal(*, key: str) -> str:
    """Why `api_token_for_key` found nothing: `token_revoked`, `shop_disabled` or
    `invalid_token` (no such key). Asked only after a refusal, so a valid token costs
    one query."""
    token = (
        ApiToken.objects.filter(key_sha256=api_token_digest(key))
        .values("revoked_at", "shop__active")
        .first()
    )
    if token is None:
        return "invalid_token"
    if token["revoked_at"] is not None:
        return "token_revoked"
    return "shop_disabled" if not token["shop__active"] else "invalid_token"


def shop_for_name(*, name: str) -> Shop | None:
    return Shop.objects.filter(name=name).first()


@dataclass(frozen=True)
class ShopOverview:
    """One line of `shop_list`: what tells shops apart, never a secret."""

    shop: Shop
    gateway_key: str  # the key id (not secret); the default shop's is the environment's
    secret_source: str  # where the secret is: sealed, or which environment variable
    live_tokens: int
    orders: int


def shops_overview() -> list[ShopOverview]:
    """Every shop with its token and order counts (two grouped counts, not one per shop)."""
    tokens = dict(
        ApiToken.objects.filter(revoked_at__isnull=True)
        .values_list("shop")
        .annotate(n=Count("pk"))
        .order_by()
    )
    orders = dict(Order.objects.values_list("shop").annotate(n=Count("pk")).order_by())
    return [
        ShopOverview(
            shop=shop,
            gateway_key=payments_settings.GATEWAY_API_KEY
            if shop.is_default
            else str(shop.gateway_key),
            secret_source=_secret_source(shop),
            live_tokens=tokens.get(shop.pk, 0),
            orders=orders.get(shop.pk, 0),
        )
        for shop in Shop.objects.order_by("name")
    ]


def _secret_source(shop: Shop) -> str:
    if shop.is_default:
        return "$GATEWAY_API_SECRET"
    return f"${shop.gateway_secret_env}" if shop.gateway_secret_env else "sealed"


def api_tokens_of(*, shop: Shop) -> QuerySet[ApiToken]:
    """The shop's tokens, newest first, revoked ones too (their orders still name them)."""
    return ApiToken.objects.filter(shop=shop).order_by("-created", "-pk")


def api_tokens_matching(*, shop: Shop, given: str) -> list[ApiToken]:
    """The shop's live tokens that `given` names: a whole key, or the prefix lists show."""
    live = ApiToken.objects.filter(shop=shop, revoked_at__isnull=True)
    prefix = given.rstrip(".")
    return list(live.filter(Q(key_sha256=api_token_digest(given)) | Q(prefix=prefix)))


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
