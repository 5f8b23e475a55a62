"""The gateway is slow, refuses or drops connections, or answers garbage to POST /api/orders/.

The far side is a scripted gateway on a real socket (fake_gateway.py) that counts
what reached it. What must hold: a clear API error (README: 502/503/504 with
`error`, `detail`, `order`), the order recorded as `failed` with its reason and
never half-made (no transaction, no payment URL), `gateway_uncertain` whenever the
gateway may have acted on the request, and no second creation at the gateway that
nobody asked for. tests/payments/test_orders_api.py covers the plain refusal,
timeout and unreachable cases against the sandbox; this adds the failure shapes
and what a retry with the same Idempotency-Key does after each.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from payments.models import Order, OrderTransition
from tests.factories import api_token_key
from tests.faults.conftest import wait_until
from tests.faults.fake_gateway import CREATED, FakeGateway, Step

pytestmark = pytest.mark.django_db(transaction=True)

VALID = {"reference": "order-7", "amount": "12.50", "currency": "USD"}
READ_TIMEOUT = 0.6
SLOW = Step(created=True, delay=READ_TIMEOUT + 1.2)  # it creates the order, but too late


@pytest.fixture
def token(transactional_db: None) -> str:
    return api_token_key(name="shop")


def shop_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def api_client(token: str) -> APIClient:
    return shop_client(token)


@pytest.fixture
def gateway(settings: Any) -> Iterator[Callable[..., FakeGateway]]:
    started: list[FakeGateway] = []

    def start(*steps: Step) -> FakeGateway:
        fake = FakeGateway(list(steps)).start()
        started.append(fake)
        settings.GATEWAY_API_URL = fake.url
        settings.GATEWAY_READ_TIMEOUT = READ_TIMEOUT
        settings.GATEWAY_CONNECT_TIMEOUT = 1.0
        return fake

    yield start
    for fake in started:
        fake.stop()


def create(client: APIClient, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/api/orders/", VALID, format="json", headers=headers)


def assert_failed(order_id: str, *, reason: str, uncertain: bool) -> Order:
    """Recorded as failed, with its reason; nothing of a created order; flagged if uncertain."""
    order = Order.objects.get(pk=order_id)
    assert order.status == "failed"
    assert reason in order.failure_reason
    assert order.transaction is None and order.payment_url == ""
    transitions = OrderTransition.objects.filter(order=order)
    assert list(transitions.values_list("from_status", "to_status")) == [("created", "failed")]
    kinds = [flag.kind for flag in order.flags.all()]
    assert kinds == (["gateway_uncertain"] if uncertain else [])
    return order


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- each failure shape --------------------------------------------------------------------


HTML = b"<html>maintenance</html>"
REJECTED = b'{"result": "error", "error": "Bad currency", "token": "invalid_parameter"}'
NO_FIELDS = b'{"result": "success", "return": {}}'
UNAVAILABLE, INVALID = "gateway_unavailable", "gateway_invalid_reply"
SHAPES = [
    # step, HTTP status, API error, failure reason, flagged gateway_uncertain
    pytest.param(SLOW, 504, "gateway_timeout", "did not answer in time", True, id="slow"),
    pytest.param(Step(status=500, body=b"Oops"), 503, UNAVAILABLE, "500", True, id="http-500"),
    pytest.param(Step(status=502, body=HTML), 503, UNAVAILABLE, "502", True, id="http-502-html"),
    pytest.param(Step(drop=True), 503, UNAVAILABLE, "gateway error", True, id="dropped"),
    pytest.param(Step(body=HTML), 502, INVALID, "not JSON", True, id="html-200"),
    pytest.param(Step(body=NO_FIELDS), 502, INVALID, "url is missing", True, id="no-fields"),
    # For contrast: a refusal of the protocol says the gateway did nothing; no flag.
    pytest.param(Step(400, REJECTED), 502, "gateway_rejected", "Bad currency", False, id="refusal"),
]


@pytest.mark.parametrize(("step", "http", "error", "reason", "uncertain"), SHAPES)
def test_a_failing_gateway_is_a_clear_error_and_a_failed_order(
    api_client: APIClient,
    gateway: Callable[..., FakeGateway],
    step: Step,
    http: int,
    error: str,
    reason: str,
    uncertain: bool,
) -> None:
    fake = gateway(step)
    started = time.monotonic()

    response = create(api_client)

    assert time.monotonic() - started < READ_TIMEOUT + 1.0  # never waits past the read timeout
    assert response.status_code == http, response.content
    body = response.json()
    assert body["error"] == error and body["detail"]
    assert "secret" not in response.content.decode().lower()
    assert_failed(body["order"], reason=reason, uncertain=uncertain)
    assert fake.order_creations() == 1  # sent once, never re-sent by the service
    assert Order.objects.count() == 1


def test_connection_refused_is_a_503_and_not_uncertain(
    api_client: APIClient, settings: Any
) -> None:
    settings.GATEWAY_API_URL = f"http://127.0.0.1:{closed_port()}/api/"

    response = create(api_client)

    assert response.status_code == 503
    assert response.json()["error"] == "gateway_unavailable"
    # The request never left: the gateway cannot have created anything, so no flag.
    assert_failed(response.json()["order"], reason="gateway error", uncertain=False)


def test_a_failed_creation_is_recorded_in_one_transaction(
    api_client: APIClient, gateway: Callable[..., FakeGateway]
) -> None:
    """Failed, its reason and its flag commit together: never a failed order without why."""
    gateway(Step(drop=True))
    with CaptureQueriesContext(connection) as queries:
        response = create(api_client)

    assert response.status_code == 503, response.content
    assert_failed(response.json()["order"], reason="gateway error", uncertain=True)
    sql = [q["sql"] for q in queries.captured_queries]
    words = [q.split()[0].upper() for q in sql]
    failing = next(i for i, q in enumerate(sql) if q.startswith("UPDATE") and "failure_reason" in q)
    begin = max(i for i in range(failing) if words[i] == "BEGIN")
    commit = words.index("COMMIT", failing)
    assert "COMMIT" not in words[begin:failing]
    inside, after = " ".join(sql[begin:commit]), " ".join(sql[commit:])
    for table in ("payments_ordertransition", "payments_orderflag"):
        assert f'INSERT INTO "{table}"' in inside
        assert table not in after


# --- a retry with the same Idempotency-Key -------------------------------------------------


def test_a_retry_after_a_timeout_is_a_new_attempt_and_the_first_stays_flagged(
    api_client: APIClient, gateway: Callable[..., FakeGateway]
) -> None:
    """README: a retry with the same key after a failure makes a new attempt; a timed-out
    one is flagged `gateway_uncertain`. So a second order may exist at the gateway, but
    never silently: the first is failed and flagged for a person, and further retries
    with the key give back the second order without calling the gateway again.
    """
    fake = gateway(SLOW, CREATED)

    timed_out = create(api_client, key="k-timeout")
    retried = create(api_client, key="k-timeout")
    again = create(api_client, key="k-timeout")

    assert timed_out.status_code == 504
    first = assert_failed(timed_out.json()["order"], reason="in time", uncertain=True)
    assert retried.status_code == 201, retried.content
    second = Order.objects.get(pk=retried.json()["id"])
    assert second.pk != first.pk
    assert second.status == "awaiting_payment"
    assert str(second.transaction) == fake.created[-1]
    assert (again.status_code, again.json()["id"]) == (200, str(second.pk))
    assert fake.order_creations() == 2  # the timed-out one and the retry
    # The slow gateway does create the first one, after the service stopped waiting: two
    # orders at the gateway, one of them known to the service only by its flag.
    wait_until(lambda: len(fake.created) == 2, 5, "the slow creation to finish")
    first.refresh_from_db()
    assert first.transaction is None and first.status == "failed"
    assert Order.objects.count() == 2
    assert second.flags.count() == 0


def test_a_retry_while_the_first_request_waits_for_the_gateway_is_a_409(
    api_client: APIClient, token: str, gateway: Callable[..., FakeGateway]
) -> None:
    fake = gateway(Step(created=True, delay=READ_TIMEOUT * 0.8))
    first: list[Any] = []
    request = threading.Thread(target=lambda: first.append(create(api_client, key="k-busy")))
    request.start()
    try:
        deadline = time.monotonic() + 5
        while fake.order_creations() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.order_creations() == 1
        meanwhile = create(shop_client(token), key="k-busy")
    finally:
        request.join(timeout=10)

    assert meanwhile.status_code == 409
    assert meanwhile.json()["error"] == "idempotency_conflict"
    assert first[0].status_code == 201
    assert fake.order_creations() == 1  # the retry never reached the gateway
    assert Order.objects.count() == 1
