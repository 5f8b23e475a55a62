"""The gateway client configured from Django settings (read at call time, not at import)."""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.core.cache import caches

from payments import metrics
from payments.gateway.client import GatewayClient, GatewayConfig
from payments.gateway.sessions import thread_session
from payments.nonces import nonce_call_lock, nonce_next


def gateway_config() -> GatewayConfig:
    return GatewayConfig(
        api_url=settings.GATEWAY_API_URL,
        api_key=settings.GATEWAY_API_KEY,
        api_secret=settings.GATEWAY_API_SECRET,
        user_agent=settings.GATEWAY_USER_AGENT,
        connect_timeout=settings.GATEWAY_CONNECT_TIMEOUT,
        read_timeout=settings.GATEWAY_READ_TIMEOUT,
        nonce_retries=settings.GATEWAY_NONCE_RETRIES,
        cache_seconds=settings.GATEWAY_PUBLIC_CACHE_SECONDS,
    )


def gateway_client() -> GatewayClient:
    """A new client on this thread's HTTP session (kept between calls; never shared by threads).

    Use it in the thread that asked for it; closing it leaves the session open.
    """
    config = gateway_config()
    lock_seconds = settings.GATEWAY_CALL_LOCK_SECONDS
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
