"""Deploy checks: `manage.py check --deploy` (which `make serve` runs) refuses a bad production.

Each is an error with an id and a hint that names the variable to set; docs/deploy.md
says what each one means. They run only with --deploy: development (`make run`,
the tests) is what they would refuse.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from merchant.pooling import POOLERS, TRANSACTION
from payments.conf import payments_settings

Found = Iterator[checks.CheckMessage]
LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)
MACHINE_CACHES = ("django.core.cache.backends.filebased.FileBasedCache",)


def _error(id: str, msg: str, hint: str) -> checks.Error:
    return checks.Error(msg, hint=hint, id=f"payments.{id}")


def _is_loopback(host: str | None) -> bool:
    if not host or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _modes() -> Found:
    if settings.DEBUG:
        yield _error(
            "E101",
            "DJANGO_DEBUG is on: pages show settings and stack traces to anyone.",
            "Unset DJANGO_DEBUG (production is the default; only `make run` switches it on).",
        )
    if payments_settings.SANDBOX_ENABLED:
        yield _error(
            "E102",
            "The sandbox gateway is on: anyone can pay or cancel any order for nothing.",
            "Unset SANDBOX_ENABLED (it is off unless switched on).",
        )
    if payments_settings.DEMO_SHOP_ENABLED:
        yield _error(
            "E103",
            "The demo shop is on: anyone can create orders from its page.",
            "Unset DEMO_SHOP_ENABLED (it is off unless switched on).",
        )


def _one_machine() -> Found:
    if payments_settings.DEPLOY_SINGLE_MACHINE:
        return
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        yield _error(
            "E104",
            "The database is SQLite: one machine, one writer at a time.",
            "Set DATABASE_URL to PostgreSQL (postgres://...), or DEPLOY_SINGLE_MACHINE=1 "
            "if this service is meant to run on this machine alone.",
        )
    if str(payments_settings.CELERY_BROKER_URL).startswith("filesystem://"):
        yield _error(
            "E105",
            "The Celery broker is kombu's filesystem transport: workers on other machines "
            "never see its tasks.",
            "Set CELERY_BROKER_URL to Redis (redis://...) or RabbitMQ (amqp://...), or "
            "DEPLOY_SINGLE_MACHINE=1 if this service is meant to run on this machine alone.",
        )


def _cache() -> Found:
    backend = settings.CACHES["default"]["BACKEND"]
    per_machine = backend in MACHINE_CACHES and not payments_settings.DEPLOY_SINGLE_MACHINE
    if backend in LOCAL_CACHES or per_machine:
        yield _error(
            "E106",
            f"The cache ({backend.rsplit('.', 1)[-1]}) is not shared by every process of the "
            "service: the gateway's public answers and the dashboard's refresh "
            f"guard would be kept once per {'machine' if per_machine else 'process'}.",
            "Set CACHE_URL to a shared cache, e.g. rediscache://host:6379/1 (a file cache "
            "serves one machine: DEPLOY_SINGLE_MACHINE=1).",
        )


def _urls() -> Found:
    base_url = payments_settings.PUBLIC_BASE_URL
    public = urlsplit(base_url)
    if public.scheme != "https":
        yield _error(
            "E107",
            f"PUBLIC_BASE_URL ({base_url}) is not https: the gateway would "
            "post notifications and send payers over plain HTTP.",
            "Set PUBLIC_BASE_URL to the https:// address the gateway and payers reach.",
        )
    if _is_loopback(public.hostname):
        yield _error(
            "E108",
            f"PUBLIC_BASE_URL ({base_url}) is a loopback address: the gateway cannot reach it.",
            "Set PUBLIC_BASE_URL to the service's public address, e.g. https://pay.shop.example.",
        )
    for name in ("GATEWAY_API_URL", "GATEWAY_PAYMENT_HOST"):
        if _is_own_sandbox(getattr(payments_settings, name)):
            yield _error(
                "E109",
                f"{name} points at this service's own sandbox, not at a gateway.",
                f"Set {name} to the gateway's address (docs/deploy.md).",
            )


def _is_own_sandbox(url: str) -> bool:
    if payments_settings.SANDBOX_URL and url.startswith(f"{payments_settings.SANDBOX_URL}/sandbox"):
        return True  # the default when the sandbox has a process of its own
    target, public = urlsplit(url), urlsplit(payments_settings.PUBLIC_BASE_URL)
    same_host = target.hostname == public.hostname or (
        _is_loopback(target.hostname) and target.port in (None, payments_settings.PORT)
    )
    return same_host and target.path.startswith(f"{public.path}/sandbox")


def _secrets() -> Found:
    try:
        key = str(settings.SECRET_KEY)
    except ImproperlyConfigured:
        return  # not set at all: payments.E001 says so
    if key.startswith(payments_settings.DEV_KEY_PREFIX) or len(key) < 50 or len(set(key)) < 5:
        yield _error(
            "E110",
            "DJANGO_SECRET_KEY was made for development, or is short.",
            "Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) to at least 50 random "
            "characters, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(50))'`.",
        )


def _lockout_behind_proxy() -> Found:
    """Behind a reverse proxy every client reaches Django from the proxy's address."""
    if not apps.is_installed("axes"):
        return  # a project without the service's admin lockout
    by_address = any(
        "ip_address" in ([entry] if isinstance(entry, str) else entry)
        for entry in settings.AXES_LOCKOUT_PARAMETERS
    )
    if settings.SECURE_PROXY_SSL_HEADER and by_address:
        yield _error(
            "E111",
            "Admin logins are locked out by address behind a reverse proxy: every client has "
            "the proxy's address, so a few failed logins would lock everyone out.",
            "Set ADMIN_LOGIN_LOCKOUT_BY=username and rate-limit /admin/login/ at the proxy, or "
            "give gunicorn the client's address (PROXY protocol): docs/deploy.md, Abuse.",
        )


def _pooler() -> Found:
    """DATABASE_POOLER=transaction: nothing may hold state in a session (merchant.pooling)."""
    pooler, db = payments_settings.DATABASE_POOLER, settings.DATABASES["default"]
    if pooler not in POOLERS:
        yield _error(
            "E120",
            f"DATABASE_POOLER ({pooler}) is not a pool mode this service knows.",
            "Set DATABASE_POOLER=transaction behind PgBouncer's pool_mode=transaction (or a "
            "managed pooler in transaction mode); unset it for a direct connection.",
        )
    if pooler != TRANSACTION:
        return
    options = db.get("OPTIONS", {})
    held = [name for name in ("options", "assume_role") if options.get(name)]
    if options.get("prepare_threshold") is not None:
        held.append("prepare_threshold")
    if not db.get("DISABLE_SERVER_SIDE_CURSORS"):
        held.append("DISABLE_SERVER_SIDE_CURSORS off")
    if db["ENGINE"] != "django.db.backends.postgresql" or held:
        yield _error(
            "E121",
            "DATABASE_POOLER=transaction, but the database settings need a session of their "
            f"own ({', '.join(held) or db['ENGINE']}): startup options are refused, SET ROLE "
            "and prepared statements stay on a server connection the pooler lends to others.",
            "Take options=, assume_role= and prepare_threshold= out of DATABASE_URL and point "
            "it at PostgreSQL through the pooler (docs/deploy.md, PgBouncer).",
        )


CHECKS: tuple[Callable[[], Found], ...] = (
    _modes,
    _one_machine,
    _cache,
    _urls,
    _secrets,
    _lockout_behind_proxy,
    _pooler,
)


@checks.register(checks.Tags.security, deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [message for check in CHECKS for message in check()]
