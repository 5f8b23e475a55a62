"""The app's settings (payments.conf): a default for each, read at each use, and clear
check errors for those a project must give (README: Inside your own Django project)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import global_settings
from django.core import checks

from payments.conf import DEFAULTS, DERIVED, REQUIRED, beat_schedule, payments_settings

REPO = Path(__file__).resolve().parents[2]
# The service's own modules, never imported by the app: they may read its settings.
SERVICE_ONLY = {"merchant/settings.py", "merchant/urls.py"}
READ = re.compile(r"(?<![\w.])settings\.([A-Z_]{3,})\b")


def test_the_app_reads_no_setting_of_its_own_straight_from_django() -> None:
    """Each is read through payments_settings (a default) or is Django's own (always set);
    the AXES_ ones only where django-axes is installed."""
    straight = set()
    for package in ("payments", "merchant"):
        for path in (REPO / package).rglob("*.py"):
            if str(path.relative_to(REPO)) in SERVICE_ONLY:
                continue
            for name in READ.findall(path.read_text()):
                if not hasattr(global_settings, name) and not name.startswith("AXES_"):
                    straight.add(f"{path.relative_to(REPO)}: {name}")
    # Names in docstrings and comments (settings.CELERY_TASK_ROUTES ...) are not reads.
    assert straight <= {
        "merchant/queues.py: CELERY_TASK_ROUTES",
        "merchant/queues.py: CELERY_TASK_QUEUES",
        "merchant/queues.py: CELERY_MAX_COUNTDOWN_SECONDS",
        "merchant/beat.py: CELERY_BEAT_SCHEDULER",
    }, sorted(straight)


def test_a_project_without_the_settings_gets_the_defaults(settings: Any) -> None:
    for name in [*DEFAULTS, *DERIVED]:
        if hasattr(settings, name):
            delattr(settings, name)
    settings.BASE_DIR = Path("/srv/shop")

    assert payments_settings.PAYMENTS_ORDER_TTL == 3600
    assert payments_settings.SHOP_WEBHOOK_URL == ""
    assert Path("/srv/shop/var") == payments_settings.VAR_DIR
    settings.PAYMENTS_ORDER_TTL = 600  # the quote window follows the project's order TTL
    assert payments_settings.PAYMENTS_QUOTE_WINDOW == 600
    settings.PAYMENTS_QUOTE_WINDOW = 0  # ...unless set, even to what check E007 refuses
    assert payments_settings.PAYMENTS_QUOTE_WINDOW == 0


def test_the_service_settings_use_the_same_defaults(settings: Any) -> None:
    assert DEFAULTS["GATEWAY_USER_AGENT"] == settings.GATEWAY_USER_AGENT
    assert DEFAULTS["PAYMENTS_CONFIRMING_TTL"] == settings.PAYMENTS_CONFIRMING_TTL
    assert {
        name: entry
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if name.startswith("payments-")
    } == beat_schedule()


def test_a_project_that_lacks_them_is_told_each_required_setting_by_name(settings: Any) -> None:
    for name in [*DEFAULTS, *DERIVED]:
        if hasattr(settings, name):
            delattr(settings, name)
    settings.DEBUG = False
    settings.ROOT_URLCONF = "payments.site_urls"  # a project's, not the service's merchant.urls

    found = {message.id: message for message in checks.run_checks()}

    for check_id, name in [
        ("payments.E010", "PUBLIC_BASE_URL"),
        ("payments.E011", "GATEWAY_API_URL"),
        ("payments.E012", "GATEWAY_PAYMENT_HOST"),
        ("payments.E002", "GATEWAY_API_KEY"),
        ("payments.E003", "GATEWAY_API_SECRET"),
    ]:
        assert name in found[check_id].msg and name in (found[check_id].hint or "")
    assert set(REQUIRED) == {
        "PUBLIC_BASE_URL",
        "GATEWAY_API_URL",
        "GATEWAY_PAYMENT_HOST",
        "GATEWAY_API_KEY",
        "GATEWAY_API_SECRET",
    }
