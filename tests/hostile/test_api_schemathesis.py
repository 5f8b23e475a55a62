"""Schemathesis against every operation of the API, from its own /api/schema/.

The schema is loaded from the running Django app over WSGI; every generated
case is sent through the whole stack (middleware, DRF, services), and an
order that passes validation really goes to the sandbox gateway over HTTP
(a live server: GATEWAY_API_URL points at its /sandbox/api/), so nothing on
the service's side is mocked.

The operations are the schema's own (read when the tests are collected), so an
operation added to the API is fuzzed without a change here. Authenticated (a
shop's API token), positive and negative cases per operation: never a 5xx other
than the gateway answers the API documents (502/503/504 with the ErrorOutput
body); every answer's status, content type and body are the schema's; negative
data is refused; and no order reaches the gateway unless the API accepted the
input: a 4xx leaves Order and SandboxOrder untouched, a 201 adds exactly one
order at the gateway with the amount and currency that were answered.

The events operations run against a seeded event of the token's shop (its
delivery failing at an endpoint that refuses connections): they never change
an order, and a 202 is only ever answered for that shop's event.

Unauthenticated: every case is a 401 and changes nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import checks
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from payments.models import Order, ShopEvent
from payments.services import order_transition
from payments.services.shop_events import shop_event_deliver
from payments.services.webhook_endpoints import webhook_endpoint_create
from payments.states import OrderStatus
from payments.testing import ipn_body, post_ipn
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxOrder
from tests.hostile.fuzzlog import count

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = {"authenticated": 40, "anonymous": 15}
ORDERS_OPERATIONS = {
    ("/api/orders/", "GET"),
    ("/api/orders/", "POST"),
    ("/api/orders/{order_id}/", "GET"),
}
EVENTS_OPERATIONS = {
    ("/api/events/", "GET"),
    ("/api/events/{event_id}/", "GET"),
    ("/api/events/{event_id}/redeliver/", "POST"),
    ("/api/events/replay/", "POST"),
}


def served_schema() -> Any:
    """The schema exactly as /api/schema/ serves it, bound to the service's WSGI app."""
    return schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


def schema_operations() -> list[tuple[str, str]]:
    listed = (result.ok() for result in served_schema().get_all_operations())
    return sorted((operation.path, operation.method.upper()) for operation in listed)


# Every operation the schema has (it is generated from the URLconf, without the database).
OPERATIONS = schema_operations()
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
GATEWAY_FAILURES = {502, 503, 504}


def fuzz_settings(examples: int) -> Any:
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


@pytest.fixture
def api_schema(db: None) -> Any:
    return served_schema()


def seed_paid_order(make_order: Callable[..., Order]) -> Order:
    """An order paid too much through a real notification: it has a payment and a flag."""
    order = make_order()
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int * 2)
    assert post_ipn(Client(), body).content == b"[OK]"
    assert order.flags.exists() and order.payments.exists()
    return order


def seed_failing_event(order: Order) -> ShopEvent:
    """An event of the order's shop, its one delivery failing (the port refuses connections)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    webhook_endpoint_create(shop=order.shop, url=f"http://127.0.0.1:{port}/hooks")
    order_transition(order_id=order.pk, to=OrderStatus.EXPIRED, reason="test")
    event = ShopEvent.objects.get(order=order, type="order.expired")
    for delivery in event.deliveries.all():
        shop_event_deliver(delivery_id=delivery.pk)
    return event


def state() -> tuple[int, int]:
    return Order.objects.count(), SandboxOrder.objects.count()


def test_the_schema_lists_the_orders_and_events_operations() -> None:
    assert set(OPERATIONS) >= ORDERS_OPERATIONS | EVENTS_OPERATIONS


def assert_what_changed(
    path: str, method: str, response: Any, before: tuple[int, int], after: tuple[int, int]
) -> None:
    """Only an accepted creation adds an order (and one at the gateway); a failed one, one."""
    status = response.status_code
    (orders_before, at_gateway_before), (orders_after, at_gateway_after) = before, after
    if (path, method) != ("/api/orders/", "POST") or 400 <= status < 500:
        assert after == before, status
    elif status == 201:
        assert (orders_after, at_gateway_after) == (orders_before + 1, at_gateway_before + 1)
        answered = response.json()
        at_gateway = SandboxOrder.objects.get(transaction=answered["transaction"])
        assert at_gateway.amount_int == answered["amount_int"]
        assert at_gateway.currency == answered["currency"]
    elif status in GATEWAY_FAILURES:
        assert orders_after == orders_before + 1  # recorded as failed
        assert response.json()["error"].startswith("gateway_")
    else:
        assert status == 200  # the same Idempotency-Key again: the same order
        assert after == before


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_authenticated_cases(
    enqueued: list[str],
    api_schema: Any,
    api_token: str,
    live_gateway: str,
    make_order: Callable[..., Order],
    path: str,
    method: str,
    mode: Any,
) -> None:
    ensure_configured_account()  # the sandbox knows our key, as in `make run`
    seeded = seed_paid_order(make_order)
    operation = api_schema[path][method]
    auth = {"Authorization": f"Token {api_token}"}
    cases = operation.as_strategy(generation_mode=mode)
    if "{order_id}" in path:  # also ask for an order that exists, with payments and flags
        cases = cases | operation.as_strategy(
            generation_mode=mode, path_parameters={"order_id": str(seeded.pk)}
        )
    if "{event_id}" in path:  # also ask for an event that exists, failing at an endpoint
        event = seed_failing_event(make_order())
        cases = cases | operation.as_strategy(
            generation_mode=mode, path_parameters={"event_id": str(event.pk)}
        )

    @fuzz_settings(EXAMPLES["authenticated"])
    @given(case=cases)
    def run(case: Any) -> None:
        count(f"schemathesis: {method} {path} {mode} authenticated (cases)")
        before = state()

        response = case.call(headers=auth)

        status = response.status_code
        count(f"schemathesis: {method} {path} {mode} authenticated, answered {status}")
        conformance = [
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,  # acts on negative cases only
        ]
        if status not in GATEWAY_FAILURES:  # documented answers when the gateway fails
            conformance.append(checks.not_a_server_error)
        case.validate_response(response, checks=conformance, headers=auth)
        assert_what_changed(path, method, response, before, state())

    run()


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_anonymous_cases_are_401_and_change_nothing(
    api_schema: Any, live_gateway: str, path: str, method: str
) -> None:
    operation = api_schema[path][method]

    @fuzz_settings(EXAMPLES["anonymous"])
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        count(f"schemathesis: {method} {path} anonymous (cases)")
        before = state()
        case.headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}

        response = case.call()

        case.validate_response(response, checks=[checks.not_a_server_error])
        assert response.status_code == 401, (response.status_code, response.text[:300])
        assert state() == before

    run()
