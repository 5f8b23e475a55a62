"""System checks: production refuses to start without its secrets.

`manage.py` commands run these by themselves; gunicorn and Celery run them
through `merchant.startup.refuse_to_start_on_errors`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from payments.api.throttles import OrderCreateRateThrottle
from payments.choices import IpnApply
from payments.conf import payments_settings
from payments.gateway.signing import secret_valid
from payments.selectors import parse_return_host
from payments.shop_event_signing import secret_is_standard


def _secret_key_missing() -> bool:
    try:
        return not settings.SECRET_KEY
    except ImproperlyConfigured:
        return True


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@checks.register(checks.Tags.security, deploy=False)
def check_secrets(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    production = not settings.DEBUG
    level = checks.Error if production else checks.Warning
    found: list[checks.CheckMessage] = []
    if production and _secret_key_missing():
        found.append(
            checks.Error(
                "DJANGO_SECRET_KEY is not set.",
                hint="Production (DJANGO_DEBUG off) needs a long random DJANGO_SECRET_KEY "
                "in the environment.",
                id="payments.E001",
            )
        )
    key, secret = payments_settings.GATEWAY_API_KEY, payments_settings.GATEWAY_API_SECRET
    if not key or not _is_uuid(key):
        found.append(
            level(
                "GATEWAY_API_KEY is missing or is not a UUID.",
                hint="Set GATEWAY_API_KEY to the gateway's API key id "
                "(`make run` generates sandbox credentials in development).",
                id="payments.E002" if production else "payments.W002",
            )
        )
    if not secret_valid(secret):
        found.append(
            level(
                "GATEWAY_API_SECRET is missing or is not base64.",
                hint="Set GATEWAY_API_SECRET to the gateway's API secret, base64 as the "
                "gateway gives it.",
                id="payments.E003" if production else "payments.W003",
            )
        )
    return found


@checks.register(checks.Tags.security, deploy=False)
def check_shop_events(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The default shop's endpoint from the settings is never unsigned; rotation has a window.

    SHOP_WEBHOOK_URL / _SECRET define the default shop's first webhook endpoint
    (payments.services.webhook_endpoints); the endpoints made in the admin or by
    `shop_webhook_add` get a generated secret, so only this one can lack one.
    """
    found: list[checks.CheckMessage] = []
    if not payments_settings.SHOP_WEBHOOK_ROTATION_HOURS >= 0:
        found.append(
            checks.Error(
                "SHOP_WEBHOOK_ROTATION_HOURS must be 0 or more.",
                hint="Set it to how long a webhook endpoint's former secret keeps signing "
                "after a rotation, e.g. 24.",
                id="payments.E009",
            )
        )
    url = payments_settings.SHOP_WEBHOOK_URL
    if not url:
        return found
    if not url.lower().startswith(("http://", "https://")):
        found.append(
            checks.Error(
                "SHOP_WEBHOOK_URL is not an http(s) URL.",
                hint="Set SHOP_WEBHOOK_URL to the default shop's endpoint, e.g. "
                "https://shop.example/payments/events, or leave it empty.",
                id="payments.E005",
            )
        )
    return found + _shop_webhook_secret_messages()


def _shop_webhook_secret_messages() -> list[checks.CheckMessage]:
    """SHOP_WEBHOOK_SECRET, with SHOP_WEBHOOK_URL set: there (E004), and standard (W401)."""
    secret = payments_settings.SHOP_WEBHOOK_SECRET
    if not secret:
        return [
            checks.Error(
                "SHOP_WEBHOOK_URL is set but SHOP_WEBHOOK_SECRET is empty.",
                hint="The default shop's endpoint from SHOP_WEBHOOK_URL is signed with "
                "SHOP_WEBHOOK_SECRET; set it to a Standard Webhooks secret (whsec_ + standard "
                "base64 of 32 random bytes) that the shop also knows, or unset SHOP_WEBHOOK_URL.",
                id="payments.E004",
            )
        ]
    if secret_is_standard(secret):
        return []
    return [
        checks.Warning(
            "SHOP_WEBHOOK_SECRET is not a Standard Webhooks secret (whsec_ followed by "
            "standard base64); the events are signed with its raw UTF-8 bytes.",
            hint='Set it to a new secret, e.g. the output of `python3 -c "import base64, '
            "secrets; print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\"`"
            " (the former one keeps signing for SHOP_WEBHOOK_ROTATION_HOURS). "
            "See README, Shop webhooks.",
            id="payments.W401",
        )
    ]


@checks.register(checks.Tags.security, checks.Tags.database, deploy=False)
def check_webhook_endpoint_secrets(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Endpoints whose secret predates Standard Webhooks: told to rotate (`migrate`, `check
    --database default`; Django runs database checks only with a database named)."""
    if not databases:
        return []
    from payments.webhook_endpoints import webhook_endpoints_with_legacy_secrets

    try:
        legacy = webhook_endpoints_with_legacy_secrets()
    except DatabaseError:  # not migrated yet: nothing to say
        return []
    if not legacy:
        return []
    # Never the URL: it may carry a token, and this goes to the deploy's log.
    named = ", ".join(f"#{e.pk} (shop {e.shop.name or e.shop_id})" for e in legacy[:20])
    more = f" and {len(legacy) - 20} more" if len(legacy) > 20 else ""
    return [
        checks.Warning(
            f"{len(legacy)} webhook endpoint(s) have a secret made before Standard Webhooks "
            f"(not whsec_ + standard base64), signed with its raw UTF-8 bytes: {named}{more}.",
            hint="Rotate each (the admin's Rotate secret, or `manage.py shop_webhook_rotate`) "
            "and give the shop the new secret. See README, Shop webhooks.",
            id="payments.W402",
        )
    ]


@checks.register(deploy=False)
def check_quote_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A tolerance outside [0, 1) or a window that is not positive would accept money short."""
    found: list[checks.CheckMessage] = []
    tolerance = payments_settings.PAYMENTS_UNDERPAID_TOLERANCE
    if not (tolerance.is_finite() and 0 <= tolerance < 1):
        found.append(
            checks.Error(
                f"PAYMENTS_UNDERPAID_TOLERANCE is {tolerance}; it must be a fraction in [0, 1).",
                hint="Set PAYMENTS_UNDERPAID_TOLERANCE to a small fraction such as 0.005 (0.5 %).",
                id="payments.E006",
            )
        )
    if payments_settings.PAYMENTS_QUOTE_WINDOW <= 0:
        found.append(
            checks.Error(
                "PAYMENTS_QUOTE_WINDOW must be a positive number of seconds.",
                hint="Set PAYMENTS_QUOTE_WINDOW to how long a fiat order's BTC quote holds, "
                "e.g. 900.",
                id="payments.E007",
            )
        )
    return found


@checks.register(deploy=False)
def check_ipn_apply(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """An unknown PAYMENTS_IPN_APPLY would leave every IPN unapplied, or applied twice over."""
    value = payments_settings.PAYMENTS_IPN_APPLY
    if value in IpnApply.values:
        return []
    return [
        checks.Error(
            f"PAYMENTS_IPN_APPLY is {value!r}; it must be one of {', '.join(IpnApply.values)}.",
            hint="Set PAYMENTS_IPN_APPLY=request (the request applies each IPN before [OK]) "
            "or =worker (a Celery worker applies it just after; README: Notifications).",
            id="payments.E020",
        )
    ]


@checks.register(deploy=False)
def check_return_hosts(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Each PAYMENTS_RETURN_HOSTS entry is a host or an origin: said at start, not per order."""
    found: list[checks.CheckMessage] = []
    for entry in payments_settings.PAYMENTS_RETURN_HOSTS:
        if not entry.strip():
            continue  # "a,,b" or a trailing comma: nothing to allow
        try:
            parse_return_host(entry)
        except ValueError as exc:
            found.append(
                checks.Error(
                    f"PAYMENTS_RETURN_HOSTS entry {entry!r} is not usable: {exc}.",
                    hint="Write a host (shop.example: any http(s) URL on it) or an origin "
                    "(https://shop.example or https://shop.example:8443: only that scheme "
                    "and port).",
                    id="payments.E008",
                )
            )
    return found


# What a project that installs the app must set (payments.conf.REQUIRED), and what to put there.
PROJECT_SETTINGS = {
    "PUBLIC_BASE_URL": (
        "payments.E010",
        "the https:// origin at which the gateway and payers reach this project, e.g. "
        "https://shop.example (the IPN URL given to the gateway is built on it)",
    ),
    "GATEWAY_API_URL": (
        "payments.E011",
        "the gateway's API base URL, e.g. https://gateway.example/api/ "
        "(the sandbox's: <sandbox origin>/sandbox/api/)",
    ),
    "GATEWAY_PAYMENT_HOST": (
        "payments.E012",
        "the gateway's origin where payers pay, e.g. https://gateway.example "
        "(the sandbox's: <sandbox origin>/sandbox)",
    ),
}
# Apps the payments app's API and its docs pages need beside it.
NEEDED_APPS = ("rest_framework", "drf_spectacular", "drf_spectacular_sidecar")


@checks.register(deploy=False)
def check_project_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A project that installs the app is told, by name, what it must add (README)."""
    found: list[checks.CheckMessage] = []
    for name, (check_id, what) in PROJECT_SETTINGS.items():
        value = str(getattr(payments_settings, name))
        if not value.lower().startswith(("http://", "https://")):
            found.append(
                checks.Error(
                    f"{name} is missing or is not an http(s) URL.",
                    hint=f"Set {name} in the settings to {what}.",
                    id=check_id,
                )
            )
    missing = [name for name in NEEDED_APPS if not apps.is_installed(name)]
    if missing:
        found.append(
            checks.Error(
                f"INSTALLED_APPS lacks {', '.join(missing)}, which the payments app needs.",
                hint=f"Add {', '.join(repr(name) for name in missing)} to INSTALLED_APPS, "
                "before 'payments'.",
                id="payments.E013",
            )
        )
    return found


LOCKOUT_PARAMETERS = {"username", "ip_address", "user_agent"}


@checks.register(checks.Tags.security, deploy=False)
def check_abuse_limits(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The admin lockout and the order throttle: refused at start, never a 500 per request."""
    # The lockout is django-axes's, which the service installs; a project may not.
    found = _lockout_problems() if apps.is_installed("axes") else []
    if not _order_create_rate_usable():
        found.append(
            (
                f"API_ORDER_CREATE_RATE {payments_settings.API_ORDER_CREATE_RATE!r} is not a rate: "
                "write a count per period such as 60/min or 1000/hour (empty or 0: no limit).",
                "payments.E204",
            )
        )
    return [
        checks.Error(msg, hint="See docs/deploy.md, Abuse.", id=check_id) for msg, check_id in found
    ]


def _lockout_problems() -> list[tuple[str, str]]:
    found = []
    if settings.AXES_FAILURE_LIMIT < 1:
        found.append(("ADMIN_LOGIN_FAILURE_LIMIT must be at least 1.", "payments.E201"))
    if settings.AXES_COOLOFF_TIME.total_seconds() <= 0:
        found.append(("ADMIN_LOGIN_COOLOFF_MINUTES must be at least 1.", "payments.E202"))
    for entry in settings.AXES_LOCKOUT_PARAMETERS:
        names = [entry] if isinstance(entry, str) else entry
        if not names or not LOCKOUT_PARAMETERS.issuperset(names):
            found.append(
                (
                    f"ADMIN_LOGIN_LOCKOUT_BY entry {'+'.join(names)!r} is not usable: "
                    "write username, ip_address or username+ip_address.",
                    "payments.E203",
                )
            )
    return found


def _order_create_rate_usable() -> bool:
    """Parsed as the throttle parses it at each request, where a bad rate would be a 500."""
    try:
        throttle = OrderCreateRateThrottle()
        num_requests, _ = throttle.parse_rate(throttle.rate)
    except (ValueError, KeyError, IndexError):
        return False
    return throttle.rate is None or (num_requests or 0) > 0


@checks.register(checks.Tags.security, deploy=False)
def check_metrics_allowed_ips(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """METRICS_ALLOWED_IPS: refused at start rather than a 500 at each scrape."""
    from merchant.metrics import parse_allowed_ips

    try:
        parse_allowed_ips(tuple(payments_settings.METRICS_ALLOWED_IPS))
    except ValueError as exc:
        return [
            checks.Error(
                f"METRICS_ALLOWED_IPS: {exc}.",
                hint="Write addresses or networks, comma-separated: 10.0.0.5,10.1.0.0/16,::1.",
                id="payments.E301",
            )
        ]
    return []
