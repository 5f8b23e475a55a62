"""Fixtures for the hostile-input tests: seeded orders, a DB fingerprint, an API token, a gateway.

`pytest_terminal_summary` prints how many generated cases each fuzz test ran
(hypothesis examples, schemathesis cases), so a run shows how hard it tried.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Sum

from payments.models import Notification, Order, OrderFlag, OrderTransition, Payment
from tests.factories import api_token_key
from tests.hostile.fuzzlog import FUZZ_COUNTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FUZZ_COUNTS:
        return
    terminalreporter.section("hostile input: generated cases run")
    for name, number in sorted(FUZZ_COUNTS.items()):
        terminalreporter.write_line(f"{name}: {number}")
    terminalreporter.write_line(f"total: {sum(FUZZ_COUNTS.values())}")


def fingerprint() -> dict[str, Any]:
    """Everything a notification or an order creation can change, except RejectedNotification."""
    return {
        "orders": sorted(
            (str(pk), status, flags)
            for pk, status, flags in Order.objects.values_list("pk", "status", "open_flags")
        ),
        "payments": sorted(
            (str(pid), status) for pid, status in Payment.objects.values_list("pk", "status")
        ),
        "transitions": OrderTransition.objects.count(),
        "flags": OrderFlag.objects.count(),
        "notifications": Notification.objects.count(),
        "receipts": Notification.objects.aggregate(n=Sum("times_received"))["n"] or 0,
    }


@pytest.fixture
def api_token(db: None) -> str:
    return api_token_key(name="hostile")


@pytest.fixture
def live_gateway(live_server: Any, settings: Any) -> str:
    """The service and the sandbox gateway on one live HTTP server; returns its URL."""
    url = str(live_server.url)
    settings.PUBLIC_BASE_URL = url
    settings.GATEWAY_API_URL = f"{url}/sandbox/api/"
    settings.GATEWAY_PAYMENT_HOST = f"{url}/sandbox"
    return url
