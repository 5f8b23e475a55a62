"""The gateway client configured from Django settings (read at call time, not at import)."""

from __future__ import annotations

from functools import partial

from django.core.cache import caches

from payments import metrics
from payments.conf import payments_settings
from payments.gateway.client import GatewayClient, GatewayConfig
from payments.gateway.sessions import thread_session
from payments.models import Shop
from payments.nonces import nonce_call_lock, nonce_next
from payments.shops import default_gateway_credentials, shop_gateway_credentials


def gateway_config(*, shop: Shop | None = None) -> GatewayConfig:
    """The client's settings, with `shop`'s gateway account (the default shop's when None:
    the environment's, so that building it never waits for the database)."""
    if shop is None:
        credentials = default_gateway_credentials()
    else:
        credentials = shop_gateway_credentials(shop=shop)
    return GatewayConfig(
        api_url=payments_settings.GATEWAY_API_URL,
        api_key=credentials.api_key,
        api_secret=credentials.api_secret,
        user_agent=payments_settings.GATEWAY_USER_AGENT,
        connect_timeout=payments_settings.GATEWAY_CONNECT_TIMEOUT,
        read_timeout=payments_settings.GATEWAY_READ_TIMEOUT,
        nonce_retries=payments_settings.GATEWAY_NONCE_RETRIES,
        cache_seconds=payments_settings.GATEWAY_PUBLIC_CACHE_SECONDS,
    )


def gateway_client(*, shop: Shop | None = None) -> GatewayClient:
    """A new client for `shop`'s gateway account, on this thread's HTTP session.

    The session is kept between calls and never shared by threads: use the
    client in the thread that asked for it; closing it leaves the session open.
    Each gateway key has its own nonce sequence and call lock. The default shop's
    account (the environment's) when `shop` is None. ShopUnconfigured when the
    shop's secret cannot be read.
    """
    config = gateway_config(shop=shop)
    lock_seconds = payments_settings.GATEWAY_CALL_LOCK_SECONDS
    return GatewayClient(
        config,
        nonce_source=partial(nonce_next, api_key=config.api_key),
        cache=caches["default"],
        session=thread_session(config.api_url),
        observer=metrics.gateway_call_observed,
        call_lock=partial(nonce_call_lock, api_key=config.api_key, timeout=lock_seconds)
        if lock_seconds > 0
        else None,
    )
