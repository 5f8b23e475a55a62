"""Sandbox merchant accounts: the one configured for the service, and others for tests.

The configured one is made after every `migrate` (`configured_account_on_migrate`,
connected in SandboxConfig.ready as django.contrib.sites makes its site), and
lazily by the first request that names its key.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from payments.gateway.signing import new_secret, secret_valid
from sandbox.models import SandboxAccount

logger = logging.getLogger(__name__)


def _parse_key(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return None


def account_create(
    *, login: str, api_key: uuid.UUID | None = None, secret: str | None = None
) -> SandboxAccount:
    """Open another sandbox account (a fresh key and secret unless given)."""
    secret = secret if secret is not None else new_secret()
    if not secret_valid(secret):
        raise ValueError("the secret must be non-empty base64")
    return SandboxAccount.objects.create(
        login=login, api_key=api_key or uuid.uuid4(), secret=secret
    )


def ensure_configured_account() -> tuple[SandboxAccount, bool]:
    """`account_ensure` for settings.GATEWAY_API_KEY / _SECRET and SANDBOX_MERCHANT_LOGIN."""
    return account_ensure(
        api_key=settings.GATEWAY_API_KEY,
        secret=settings.GATEWAY_API_SECRET,
        login=settings.SANDBOX_MERCHANT_LOGIN,
    )


def account_ensure(*, api_key: str, secret: str, login: str) -> tuple[SandboxAccount, bool]:
    """Make sure the account for these credentials exists, with this secret.

    Creates it, or updates its secret when it changed. Returns the account and
    whether it was created. Safe to call concurrently and again. Raises
    ImproperlyConfigured when the key is not a uuid or the secret is not base64.
    """
    key = _parse_key(api_key)
    if key is None:
        raise ImproperlyConfigured("GATEWAY_API_KEY is missing or is not a uuid")
    if not secret_valid(secret):
        raise ImproperlyConfigured("GATEWAY_API_SECRET is missing or is not base64")
    try:
        with transaction.atomic():
            account, created = SandboxAccount.objects.get_or_create(
                api_key=key, defaults={"secret": secret, "login": login}
            )
    except IntegrityError:  # created by a concurrent call between get and create
        account, created = SandboxAccount.objects.get(api_key=key), False
    if not created and account.secret != secret:
        SandboxAccount.objects.filter(pk=account.pk).update(secret=secret)
        account.secret = secret
        logger.info("sandbox account %s: secret updated from the settings", account.api_key)
    elif created:
        logger.info("sandbox account %s created for GATEWAY_API_KEY", account.api_key)
    return account, created


def account_for_key(*, rest_key: str | None) -> SandboxAccount | None:
    """The account a Rest-Key header names, or None (missing, not a uuid, unknown).

    The account of the service's own GATEWAY_API_KEY is created lazily when it
    does not exist yet, so the sandbox answers the configured credentials
    without a bootstrap step. An existing account keeps its secret: the
    gateway is a separate party, and a service that signs with another secret
    is refused (ensure_configured_account, called after migrate, re-syncs it).
    """
    key = _parse_key(rest_key or "")
    if key is None:
        return None
    account = SandboxAccount.objects.filter(api_key=key).first()
    if account is None and key == _parse_key(settings.GATEWAY_API_KEY):
        try:
            account, _ = ensure_configured_account()
        except ImproperlyConfigured:
            logger.warning("GATEWAY_API_KEY is set but GATEWAY_API_SECRET is not usable")
            return None
    return account


def configured_account_on_migrate(*, verbosity: int = 1, **kwargs: Any) -> None:
    """post_migrate: the account for the service's own credentials, when they are set."""
    if not (settings.SANDBOX_ENABLED and settings.SANDBOX_ACCOUNT_ON_MIGRATE):
        return
    if not (settings.GATEWAY_API_KEY and settings.GATEWAY_API_SECRET):
        if verbosity >= 1:
            print("Sandbox: no GATEWAY_API_KEY / GATEWAY_API_SECRET; no account made.")
        return
    account, created = ensure_configured_account()
    if verbosity >= 1:
        verb = "created" if created else "ready"
        print(f"Sandbox merchant account {verb}: key {account.api_key}")
