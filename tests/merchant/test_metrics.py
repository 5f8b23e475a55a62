"""GET /metrics: only for a bearer of METRICS_TOKEN or an address of METRICS_ALLOWED_IPS,
off without either; counters of events and gauges of state, parsed as Prometheus does."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.core import checks
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from payments.gateway.errors import GatewayUnavailable
from payments.gateway_factory import gateway_client
from payments.models import ShopEventDelivery
from payments.services.dashboard_summary import dashboard_summary_refresh
from payments.services.runs import reconciliation_run
from payments.testing import ipn_body, post_ipn
from tests.factories import accepted_order

TOKEN = "metrics-token-for-the-tests"


def scrape(**extra: Any) -> Any:
    return Client().get("/metrics", **extra)


def samples(answer: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.content.decode())
        for sample in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db
def test_off_without_a_token_or_addresses(settings: Any) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert scrape(HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Token {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"Basic {TOKEN}"],
)
def test_refused_without_the_right_bearer_token(settings: Any, authorization: str | None) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, []
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    answer = scrape(**extra)
    assert answer.status_code == 403
    assert b"merchant_" not in answer.content


@pytest.mark.django_db
def test_served_to_the_bearer_of_the_token(settings: Any) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, []
    assert samples(scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("address", "status"), [("10.1.2.3", 200), ("10.2.0.1", 403), ("::1", 200), ("8.8.8.8", 403)]
)
def test_served_to_allowed_addresses_only(settings: Any, address: str, status: int) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.1.0.0/16", "::1"]
    assert scrape(REMOTE_ADDR=address).status_code == status


@pytest.mark.django_db
def test_only_get(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    answer = Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 405


def test_a_bad_allowed_address_stops_the_start(settings: Any) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "not-an-address"]
    errors = [m for m in checks.run_checks() if m.id == "payments.E301"]
    assert errors and "not-an-address" in errors[0].msg


@pytest.mark.django_db(transaction=True)
def test_events_are_counted_and_state_is_read_from_the_database(settings: Any) -> None:
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["127.0.0.1"]
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = "http://127.0.0.1:9/", "s"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    before = samples(scrape())

    # An IPN applied, the same one again, a forged one; a sweep; a gateway call that fails.
    order = accepted_order()
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    assert post_ipn(Client(), body).content == b"[OK]"
    assert post_ipn(Client(), body).content == b"[OK]"
    assert post_ipn(Client(), body, api_secret="Zm9yZ2Vk" * 11).status_code == 403
    reconciliation_run(sweep="expire")
    settings.GATEWAY_API_URL = f"http://127.0.0.1:{closed_port()}/api/"
    with pytest.raises(GatewayUnavailable), gateway_client() as client:
        client.ticker("USD")
    dashboard_summary_refresh()
    after = samples(scrape())

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("merchant_ipn_notifications_total", outcome="applied") == 1
    assert delta("merchant_ipn_notifications_total", outcome="resent") == 1
    assert delta("merchant_ipn_rejected_total", reason="bad_signature") == 1
    assert delta("merchant_sweep_runs_total", sweep="expire", status="done") == 1
    ticker = "1/BTCUSD/ticker"
    assert delta("merchant_gateway_calls_total", method=ticker, status="error") == 1
    assert delta("merchant_gateway_call_duration_seconds_count", method=ticker) == 1

    assert value(after, "merchant_orders", status="paid") == 1
    assert 0 <= value(after, "merchant_orders_age_seconds") < 60
    pending = ShopEventDelivery.objects.filter(delivered_at__isnull=True, given_up_at__isnull=True)
    assert value(after, "merchant_shop_events_backlog") == pending.count() > 0
    assert value(after, "merchant_notifications_unapplied", outcome="pending") == 0
    last_expire = [key for key in after if key[0] == "merchant_sweep_last_run_timestamp_seconds"]
    assert (
        "merchant_sweep_last_run_timestamp_seconds",
        frozenset({("sweep", "expire"), ("status", "done")}),
    ) in last_expire
