"""The payments app's settings, each with its default: one place for both.

A Django project that installs the app (README: Inside your own Django project)
sets only what it must; everything else falls back to the defaults below, read
at each use (`payments_settings.NAME` is `getattr(settings, NAME, default)`),
so `override_settings` and the tests' `settings` fixture keep working. The
service's own settings (merchant/settings.py) read the environment with these
same defaults.

REQUIRED have no usable default (an empty one): checks payments.E002/E003 and
E010-E012 name what to set, so a project that lacks them fails at `check`,
never with an AttributeError at a request.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings

from payments.choices import Sweep

# The gateway's account and where it and the payers reach this app: set by the project.
REQUIRED = (
    "PUBLIC_BASE_URL",
    "GATEWAY_API_URL",
    "GATEWAY_PAYMENT_HOST",
    "GATEWAY_API_KEY",
    "GATEWAY_API_SECRET",
)

DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(REQUIRED, ""),
    # --- Gateway calls (merchant/settings.py says what each one is for) ---
    "GATEWAY_CONNECT_TIMEOUT": 3.05,
    "GATEWAY_READ_TIMEOUT": 15.0,
    "GATEWAY_USER_AGENT": "merchant-payments/0.1 (+python-requests)",
    "GATEWAY_NONCE_RETRIES": 12,
    "GATEWAY_PUBLIC_CACHE_SECONDS": 10,
    # --- Orders ---
    "PAYMENTS_ORDER_TTL": 3600,
    "PAYMENTS_CONFIRMING_TTL": 24 * 3600,
    "PAYMENTS_UNDERPAID_TOLERANCE": Decimal("0.005"),
    "PAYMENTS_RETURN_HOSTS": [],
    # --- IPNs: applied by the request that stores them, or by a worker (payments.ipn_inbox) ---
    "PAYMENTS_IPN_APPLY": "request",
    "PAYMENTS_SWEEP_SECONDS": {
        Sweep.APPLY_PENDING.value: 60,
        Sweep.EXPIRE.value: 60,
        Sweep.STUCK.value: 600,
        Sweep.LEDGER.value: 300,
    },
    "API_ORDER_CREATE_RATE": "60/min",
    # --- Shop webhooks ---
    "SHOP_WEBHOOK_URL": "",
    "SHOP_WEBHOOK_SECRET": "",
    "SHOP_WEBHOOK_ROTATION_HOURS": 24.0,
    "SHOP_WEBHOOK_TIMEOUT": 10.0,
    "SHOP_WEBHOOK_RETRY_HOURS": 24.0,
    # --- Celery, database, health, metrics (merchant.*, used by the app) ---
    "CELERY_MAX_COUNTDOWN_SECONDS": 300.0,
    "CELERY_BROKER_URL": "",
    "BEAT_LEASE_SECONDS": 30.0,
    "DATABASE_LOCK_TIMEOUT_MS": 10_000,
    "DATABASE_POOLER": "",
    "HEALTH_WORKER_BEAT_SECONDS": 10.0,
    "HEALTH_WORKER_SEEN_SECONDS": 35.0,
    "HEALTH_BROKER_TIMEOUT_SECONDS": 0.25,
    "HEALTH_BROKER_CHECK_SECONDS": 1.0,
    "METRICS_TOKEN": "",
    "METRICS_ALLOWED_IPS": [],
    # --- The service's own switches (off in a project that embeds the app) ---
    "DEV_KEY_PREFIX": "django-insecure-",
    "DEPLOY_SINGLE_MACHINE": False,
    "DEMO_SHOP_ENABLED": False,
    "SANDBOX_ENABLED": False,
    "SANDBOX_URL": "",
    "PORT": 8000,
}


def _var_dir() -> Path:
    # Lock files of gateway calls on SQLite: beside the project, as the service's var/.
    return Path(getattr(settings, "BASE_DIR", Path.cwd())) / "var"


def call_lock_seconds(connect: float, read: float) -> float:
    """Outlasts one call that waits out both timeouts."""
    return connect + read + 2


def _quote_window() -> Any:
    return payments_settings.PAYMENTS_ORDER_TTL


def _call_lock() -> Any:
    return call_lock_seconds(
        payments_settings.GATEWAY_CONNECT_TIMEOUT, payments_settings.GATEWAY_READ_TIMEOUT
    )


# Defaults that follow other settings.
DERIVED: dict[str, Callable[[], Any]] = {
    "VAR_DIR": _var_dir,
    "PAYMENTS_QUOTE_WINDOW": _quote_window,
    "GATEWAY_CALL_LOCK_SECONDS": _call_lock,
}
_UNSET = object()


class PaymentsSettings:
    """`payments_settings.NAME`: the project's setting, else the app's default."""

    def __getattr__(self, name: str) -> Any:
        if name in DEFAULTS:
            return getattr(settings, name, DEFAULTS[name])
        if name in DERIVED:
            value = getattr(settings, name, _UNSET)
            return DERIVED[name]() if value is _UNSET else value
        raise AttributeError(f"{name} is not a setting of the payments app")


payments_settings = PaymentsSettings()


def beat_schedule(*, sweep_seconds: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """The app's periodic tasks, for CELERY_BEAT_SCHEDULE (the service's and a project's).

    Each sweep runs every `sweep_seconds[name]` seconds (0 turns it off); the
    shop events' safety net runs every minute.
    """
    schedule: dict[str, dict[str, Any]] = {
        "payments-redeliver-shop-events": {
            "task": "payments.tasks.redeliver_shop_events",
            "schedule": 60.0,
        }
    }
    seconds = {**DEFAULTS["PAYMENTS_SWEEP_SECONDS"], **(sweep_seconds or {})}
    for sweep, every in seconds.items():
        if every > 0:
            schedule[f"payments-sweep-{sweep}"] = {
                "task": "payments.tasks.run_sweep",
                "schedule": float(every),
                "args": (sweep,),
                # A sweep that could not start before its next run is skipped, not stacked.
                "options": {"expires": float(every)},
            }
    return schedule
