"""Shops and their API tokens: made, disabled, revoked (the commands and the admin call these)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.utils import timezone

from payments.conf import payments_settings
from payments.gateway.signing import secret_valid
from payments.models import ApiToken, Shop
from payments.secret_box import seal
from payments.selectors import parse_return_host
from payments.shops import api_token_digest

TOKEN_PREFIX = "mp_"  # noqa: S105  (a marker that makes a leaked token greppable)
TOKEN_BYTES = 32  # as hex: letters and digits only, so the key is one word to copy or grep
PREFIX_LENGTH = len(TOKEN_PREFIX) + 6
# A key given to api_token_create (SHOP_API_TOKEN): long enough not to be guessed.
MIN_GIVEN_KEY_LENGTH = 20
MAX_KEY_LENGTH = 128  # as the API's authentication reads at most


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
    _check_gateway_account(gateway_key, gateway_secret, gateway_secret_env)
    _check_order_defaults(return_hosts, order_ttl_seconds, underpaid_tolerance)
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


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


# The checks of a shop's fields, each a ValueError that says what is wrong: shop_create and
# the admin's shop form both run them.


def gateway_key_check(key: uuid.UUID) -> None:
    """Not the environment's GATEWAY_API_KEY: a notification signed with it is the default
    shop's (payments.shops.shop_for_gateway_key), so another shop could never get one."""
    if _is_default_key(key):
        raise ValueError("this is the default shop's gateway key (GATEWAY_API_KEY)")


def gateway_secret_env_check(name: str) -> None:
    if name and not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an environment variable's name")


def return_hosts_check(entries: Sequence[str]) -> None:
    for entry in entries:
        try:
            parse_return_host(entry)
        except ValueError as exc:
            raise ValueError(f"return host {entry!r}: {exc}") from exc


def underpaid_tolerance_check(tolerance: Decimal | None) -> None:
    if tolerance is not None and not Decimal(0) <= tolerance < 1:
        raise ValueError("the underpaid tolerance is a fraction in [0, 1)")


def _check_gateway_account(key: uuid.UUID, secret: str | None, secret_env: str) -> None:
    if (secret is None) == (not secret_env):
        raise ValueError("give the gateway secret, or the environment variable holding it")
    if secret is not None and not secret_valid(secret):
        raise ValueError("the gateway secret must be non-empty base64, as the gateway gives it")
    gateway_secret_env_check(secret_env)
    gateway_key_check(key)


def _check_order_defaults(
    return_hosts: Sequence[str], ttl_seconds: int | None, tolerance: Decimal | None
) -> None:
    return_hosts_check(return_hosts)
    if ttl_seconds is not None and ttl_seconds < 1:
        raise ValueError("the order deadline is at least 1 second")
    underpaid_tolerance_check(tolerance)


def _is_default_key(gateway_key: uuid.UUID) -> bool:
    try:
        return uuid.UUID(payments_settings.GATEWAY_API_KEY) == gateway_key
    except (TypeError, ValueError, AttributeError):
        return False  # no (usable) environment key: nothing to collide with


def api_token_create(
    *, shop: Shop, name: str, read_only: bool = False, key: str | None = None
) -> tuple[ApiToken, str]:
    """A new token for the shop, and its key: shown this once, only its SHA-256 is kept.

    The key is generated unless given (`bootstrap`'s SHOP_API_TOKEN); a given key is
    stored hashed like any other. ValueError for a given key that is too short, not
    printable ASCII, or already some token's (nothing is written then).
    """
    if key is None:
        key = TOKEN_PREFIX + secrets.token_hex(TOKEN_BYTES)
    elif not (MIN_GIVEN_KEY_LENGTH <= len(key) <= MAX_KEY_LENGTH and _one_word(key)):
        raise ValueError(
            f"an API token is {MIN_GIVEN_KEY_LENGTH} to {MAX_KEY_LENGTH} printable ASCII "
            "characters, without spaces"
        )
    digest = api_token_digest(key)
    if ApiToken.objects.filter(key_sha256=digest).exists():
        raise ValueError("this API token exists already")
    token = ApiToken.objects.create(
        shop=shop, name=name, prefix=key[:PREFIX_LENGTH], key_sha256=digest, read_only=read_only
    )
    return token, key


def _one_word(key: str) -> bool:
    return key.isascii() and key.isprintable() and not any(char.isspace() for char in key)


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
