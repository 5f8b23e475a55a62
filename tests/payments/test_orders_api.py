"""POST/GET /api/orders/: validation, round trip to the sandbox, gateway failures, idempotency."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from payments.models import Order
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxOrder
from tests.factories import api_token_key, shop_with_account
from tests.faults.fake_gateway import CREATED, FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)

VALID = {"reference": "order-42", "amount": "12.50", "currency": "USD"}


def create(client: APIClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/orders/", body, format="json", headers=headers)


# --- the round trip -------------------------------------------------------------


def test_create_round_trip_through_the_sandbox(api_client: APIClient, live_gateway: str) -> None:
    response = create(api_client, {**VALID, "description": "Two mugs", "multipay": True})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "awaiting_payment"
    assert body["amount"] == "12.50000"
    assert body["amount_int"] == 1_250_000
    assert body["currency"] == "USD"
    assert body["payment_url"] == f"{live_gateway}/sandbox/pay/{body['transaction']}"
    assert body["checkout_url"] == f"{live_gateway}/checkout/{body['id']}/"
    assert body["payments"] == [] and body["flags"] == []
    assert {"id", "reference", "created", "deadline", "button_html"} <= body.keys()
    at_gateway = SandboxOrder.objects.get(transaction=body["transaction"])
    assert at_gateway.amount_int == 1_250_000
    assert at_gateway.currency == "USD"
    assert at_gateway.multipay is True
    assert at_gateway.ipn == f"{live_gateway}/payments/ipn/"
    assert at_gateway.return_success == f"{live_gateway}/checkout/{body['id']}/success/"
    assert at_gateway.return_failure == f"{live_gateway}/checkout/{body['id']}/failure/"


def test_amount_int_is_sent_as_is(api_client: APIClient, live_gateway: str) -> None:
    response = create(api_client, {"reference": "r", "amount_int": 1_500_000, "currency": "JPY"})

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == "1500.000"
    assert SandboxOrder.objects.get().amount_int == 1_500_000


def test_list_filters_and_detail(api_client: APIClient, make_order: Any) -> None:
    paid = make_order(reference="a", status="paid")
    make_order(reference="b")

    listed = api_client.get("/api/orders/", {"status": "paid"}).json()
    assert [o["id"] for o in listed["results"]] == [str(paid.id)]
    by_ref = api_client.get("/api/orders/", {"reference": "b"}).json()["results"]
    assert [o["reference"] for o in by_ref] == ["b"]
    assert api_client.get(f"/api/orders/{paid.id}/").json()["status"] == "paid"
    assert api_client.get("/api/orders/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert api_client.get("/api/orders/", {"status": "nonsense"}).status_code == 400


def test_list_is_cursor_paginated(api_client: APIClient, make_order: Any) -> None:
    for n in range(5):
        make_order(reference=f"r{n}")

    first = api_client.get("/api/orders/", {"page_size": 2}).json()
    second = api_client.get(first["next"]).json()

    assert len(first["results"]) == 2 and len(second["results"]) == 2
    seen = {o["id"] for o in first["results"]} | {o["id"] for o in second["results"]}
    assert len(seen) == 4


# --- bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "12.123456"}, "amount"),  # USD has 5 decimals
        ({"amount": "0"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "Infinity"}, "amount"),
        ({"amount": 12.5}, "amount"),  # a JSON number went through a float
        ({"currency": "XYZ"}, "currency"),
        ({"reference": "x" * 101}, "reference"),
        ({"description": "x" * 256}, "description"),
        ({"data": "x" * 1025}, "data"),
        ({"return_success": "https://evil.example/phish"}, "return_success"),
        ({"return_failure": "javascript:alert(1)"}, "return_failure"),
        ({"amount_int": 5}, "amount"),  # both amount and amount_int
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    api_client: APIClient, change: dict[str, Any], field: str
) -> None:
    response = create(api_client, {**VALID, **change})

    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert not Order.objects.exists()


def test_missing_amount_is_a_400(api_client: APIClient) -> None:
    response = create(api_client, {"reference": "r", "currency": "USD"})
    assert response.status_code == 400
    assert "amount" in response.json()["fields"]


def test_zero_amount_int_is_a_400(api_client: APIClient) -> None:
    response = create(api_client, {"reference": "r", "currency": "USD", "amount_int": 0})
    assert response.status_code == 400
    assert "amount_int" in response.json()["fields"]


def test_allowed_return_host_is_accepted(
    api_client: APIClient, live_gateway: str, settings: Any
) -> None:
    settings.PAYMENTS_RETURN_HOSTS = ["shop.example"]
    response = create(api_client, {**VALID, "return_success": "https://shop.example/thanks"})
    assert response.status_code == 201, response.content
    assert Order.objects.get().return_success == "https://shop.example/thanks"


def test_no_token_is_a_401(client: Any) -> None:
    assert client.post("/api/orders/", VALID, content_type="application/json").status_code == 401
    assert client.get("/api/orders/").status_code == 401


def test_bad_token_is_a_401(db: None) -> None:
    anonymous = APIClient()
    anonymous.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert create(anonymous, VALID).status_code == 401


# --- the gateway fails ----------------------------------------------------------------


def test_gateway_refusal_is_a_502_and_the_order_failed(
    api_client: APIClient, live_gateway: str, settings: Any
) -> None:
    ensure_configured_account()  # the sandbox knows our key with the right secret
    settings.GATEWAY_API_SECRET = "c2FuZGJveC1tZXJjaGFudC1zZWNyZXQtMg=="  # we sign with another
    response = create(api_client, VALID)

    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "gateway_rejected"
    assert body["detail"]
    order = Order.objects.get(pk=body["order"])
    assert order.status == "failed"
    assert "rejected" in order.failure_reason


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_gateway_is_a_503(api_client: APIClient, settings: Any) -> None:
    settings.GATEWAY_API_URL = f"http://127.0.0.1:{free_port()}/api/"
    response = create(api_client, VALID)

    assert response.status_code == 503
    assert response.json()["error"] == "gateway_unavailable"
    assert Order.objects.get().status == "failed"


@pytest.fixture
def slow_gateway() -> Iterator[tuple[str, list[str]]]:
    """A gateway that takes longer than the client's read timeout; records each request."""
    hits: list[str] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            time.sleep(1.5)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/", hits
    server.shutdown()
    server.server_close()


def test_gateway_timeout_is_a_504_without_a_second_call(
    api_client: APIClient, settings: Any, slow_gateway: tuple[str, list[str]]
) -> None:
    settings.GATEWAY_API_URL, hits = slow_gateway
    settings.GATEWAY_READ_TIMEOUT = 0.3
    response = create(api_client, VALID)

    assert response.status_code == 504
    assert response.json()["error"] == "gateway_timeout"
    order = Order.objects.get()
    assert order.status == "failed"
    assert [flag.kind for flag in order.flags.all()] == ["gateway_uncertain"]
    # A POST that may have reached the gateway is never retried (the ticker timed out first).
    assert [hit for hit in hits if hit.endswith("/order/create")] == [hits[-1]]


# --- idempotency -------------------------------------------------------------------------


def test_same_idempotency_key_returns_the_same_order_without_a_second_call(
    api_client: APIClient, live_gateway: str
) -> None:
    first = create(api_client, VALID, **{"Idempotency-Key": "k-1"})
    again = create(api_client, VALID, **{"Idempotency-Key": "k-1"})

    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert Order.objects.count() == 1
    assert SandboxOrder.objects.count() == 1


def test_same_key_with_another_body_is_a_409(api_client: APIClient, live_gateway: str) -> None:
    create(api_client, VALID, **{"Idempotency-Key": "k-2"})
    response = create(api_client, {**VALID, "amount": "13.00"}, **{"Idempotency-Key": "k-2"})

    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_conflict"
    assert SandboxOrder.objects.count() == 1


def test_retry_after_a_failure_makes_a_new_attempt(
    api_client: APIClient, live_gateway: str, settings: Any
) -> None:
    real_url = settings.GATEWAY_API_URL
    settings.GATEWAY_API_URL = f"http://127.0.0.1:{free_port()}/api/"
    failed = create(api_client, VALID, **{"Idempotency-Key": "k-3"})
    settings.GATEWAY_API_URL = real_url
    retried = create(api_client, VALID, **{"Idempotency-Key": "k-3"})

    assert failed.status_code == 503
    assert retried.status_code == 201
    assert retried.json()["id"] != failed.json()["order"]
    assert Order.objects.get(pk=failed.json()["order"]).status == "failed"
    assert SandboxOrder.objects.count() == 1


def test_overlong_idempotency_key_is_a_400(api_client: APIClient) -> None:
    response = create(api_client, VALID, **{"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert not Order.objects.exists()


def test_keys_belong_to_their_shop(api_client: APIClient, live_gateway: str) -> None:
    other_client = APIClient()
    other = shop_with_account("other-shop")
    other_client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key(shop=other)}")

    mine = create(api_client, VALID, **{"Idempotency-Key": "shared"})
    theirs = create(other_client, VALID, **{"Idempotency-Key": "shared"})

    assert mine.status_code == 201 and theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert Order.objects.get(pk=theirs.json()["id"]).shop == other


def test_schema_and_docs_are_served(client: Any) -> None:
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/orders/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_detail_lists_payments_and_flags(api_client: APIClient, make_order: Any) -> None:
    from django.test import Client

    from payments.testing import ipn_body, post_ipn

    order = make_order(currency="USD", amount_int=1_250_000)
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=100_000_000)
    post_ipn(Client(), body)
    post_ipn(Client(), ipn_body(transaction=order.transaction, status="closed"))

    detail = api_client.get(f"/api/orders/{order.pk}/").json()

    assert detail["status"] == "paid"
    [payment] = detail["payments"]
    assert payment["status"] == "paid"
    assert payment["amount"] == "1.00000000" and payment["currency"] == "BTC"
    assert payment["implied_rate"] == "12.500000000000"  # 12.50 USD for 1 BTC
    assert [flag["kind"] for flag in detail["flags"]] == ["unexpected_notification"]
    assert detail["flags"][0]["reviewed"] is False


# --- what creating an order costs, and what it answers ----------------------------------


@pytest.fixture
def accepting_gateway(settings: Any) -> Iterator[str]:
    """A gateway that accepts every order/create (a new transaction each), in a thread."""
    fake = FakeGateway([CREATED]).start()
    settings.GATEWAY_API_URL = fake.url
    yield fake.url
    fake.stop()


def test_create_takes_five_statements_and_one_transaction(
    api_client: APIClient, accepting_gateway: str, django_capture_on_commit_callbacks: Any
) -> None:
    # The first call of a key also creates its nonce row; its commit hooks (run here, as
    # after a real commit) remember that the settings' webhook endpoint is in step.
    with django_capture_on_commit_callbacks(execute=True):
        create(api_client, VALID)
    with CaptureQueriesContext(connection) as queries:
        response = create(api_client, VALID)

    assert response.status_code == 201, response.content
    # token (with whether its shop has an enabled webhook endpoint: none here), INSERT order
    # (committed before the call), nonce (on PostgreSQL after the key's call lock: its
    # lock_timeout, then the advisory lock), then in one transaction: store the answer with
    # the status, record the transition. No re-read, no savepoint, no endpoints query.
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    call_lock = ["SELECT", "SELECT"] if connection.vendor == "postgresql" else []
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == [
        "SELECT", "INSERT", *call_lock, "UPDATE", "UPDATE", "INSERT",
    ]  # fmt: skip


def test_a_create_for_a_shop_with_an_endpoint_asks_which_take_the_event(
    api_client: APIClient, accepting_gateway: str, django_capture_on_commit_callbacks: Any
) -> None:
    from payments.models import ShopEvent
    from payments.services.webhook_endpoints import webhook_endpoint_create
    from payments.shops import shop_default

    with django_capture_on_commit_callbacks(execute=True):
        create(api_client, VALID)
    webhook_endpoint_create(shop=shop_default(), url="https://shop.example/hooks")
    with CaptureQueriesContext(connection) as queries:
        response = create(api_client, VALID)

    assert response.status_code == 201, response.content
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    # The endpoints query, then the event and its delivery.
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")][-3:] == [
        "SELECT", "INSERT", "INSERT",
    ]  # fmt: skip
    event = ShopEvent.objects.get(order_id=response.json()["id"])
    assert event.type == "order.awaiting_payment"


def test_the_settings_endpoint_synced_by_a_create_gets_its_event(
    api_client: APIClient, accepting_gateway: str, settings: Any
) -> None:
    from payments.models import ShopEventDelivery

    # Set now: this process has not synced it, so the token's lookup sees no endpoint.
    settings.SHOP_WEBHOOK_URL = "https://shop.example/events"
    response = create(api_client, VALID)

    assert response.status_code == 201, response.content
    delivery = ShopEventDelivery.objects.get(event__order_id=response.json()["id"])
    assert delivery.endpoint.from_settings
    assert delivery.event.type == "order.awaiting_payment"


def test_the_answer_to_a_create_is_the_order_as_stored(
    api_client: APIClient, accepting_gateway: str
) -> None:
    created = create(api_client, {**VALID, "data": "cart-7", "description": "Mugs"}).json()
    stored = api_client.get(f"/api/orders/{created['id']}/").json()

    assert created == stored


def test_the_output_is_drf_s_rendering_of_the_declared_fields(make_order: Any) -> None:
    from django.test import Client
    from rest_framework import serializers

    from payments.api.serializers import (
        OrderOutput,
        QuoteOutput,
        RefundOutput,
        order_representation,
    )
    from payments.selectors import order_get
    from payments.testing import ipn_body, post_ipn

    paid = make_order(currency="USD", amount_int=1_250_000)
    post_ipn(Client(), ipn_body(transaction=paid.transaction, status="paid", amount_int=5 * 10**7))
    post_ipn(Client(), ipn_body(transaction=paid.transaction, status="closed"))
    failed = make_order(status="failed", transaction=None, payment_url="", failure_reason="no")
    fresh = make_order(currency="JPY", amount_int=1_500_000)

    def generic(order: Order) -> Any:  # DRF's rendering of the fields read off the model
        rendered = {}
        for name, field in OrderOutput().fields.items():
            if not hasattr(order, field.source or name):  # declared for the schema only
                continue
            attribute = field.get_attribute(order)
            rendered[name] = None if attribute is None else field.to_representation(attribute)
        return rendered

    def check(order: Order, **options: Any) -> None:
        built = order_representation(order, **options)
        assert list(built) == list(OrderOutput().fields)
        assert {name: built[name] for name in generic(order)} == generic(order)
        for refund in built["refunds"]:
            assert serializers.Serializer.to_representation(RefundOutput(), refund) == refund
        if built["quote"] is not None:
            quote = built["quote"]
            assert serializers.Serializer.to_representation(QuoteOutput(), quote) == quote

    for made in (paid, failed):
        check(order_get(shop=made.shop, order_id=made.pk))
    assert generic(paid)["payments"] and generic(paid)["flags"]  # the nested lists are compared
    check(fresh, new=True)
