"""Shop events by the Standard Webhooks specification, checked the way a shop checks them.

Real deliveries from the service to a real HTTP server (tests.http_receiver),
verified with the `standardwebhooks` packages a shop would use: the Python
one in process and the npm one run by Node.js (tests.standard_webhooks). The
payload version 2 is held to the orders API's answer and to the OpenAPI
schema's `webhooks`.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import checks
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from rest_framework.test import APIClient
from standardwebhooks import WebhookVerificationError

from payments.checks import check_shop_events, check_webhook_endpoint_secrets
from payments.models import Order, OrderFlag, ShopEvent, ShopEventDelivery, WebhookEndpoint
from payments.secret_box import seal
from payments.services import order_flag, order_transition
from payments.services import shop_events as service
from payments.services.webhook_endpoints import webhook_endpoint_create, webhook_endpoint_rotate
from payments.shops import shop_default
from payments.states import OrderStatus
from tests.http_receiver import Received, ScriptedReceiver, scripted
from tests.standard_webhooks import (
    NodeCheck,
    node_verified,
    npm_prefix,
    shop_clock_ahead,
    signatures_in,
    verified,
    verifies,
)

OK = (204, b"")
STALE = 6 * 60  # past the standard's five minutes


@pytest.fixture
def server(settings: Any) -> Iterator[ScriptedReceiver]:
    settings.SHOP_WEBHOOK_TIMEOUT = 2.0
    receiver = ScriptedReceiver(scripted(((500, b"not yet"), OK)), path="/hooks").start()
    yield receiver
    receiver.stop()


def deliver_due() -> list[str]:
    return [
        service.shop_event_deliver(delivery_id=pk).result
        for pk in ShopEventDelivery.objects.filter(delivered_at__isnull=True)
        .order_by("created")
        .values_list("pk", flat=True)
    ]


def paid(order: Order) -> ShopEvent:
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
    return ShopEvent.objects.get(order=order, type="order.paid")


def delivered(event: ShopEvent, server: ScriptedReceiver) -> list[Received]:
    """Deliver `event`: refused once by the shop (HTTP 500), then taken; both requests."""
    assert deliver_due() == ["failed"]
    # The backoff's wait, passed.
    ShopEventDelivery.objects.filter(event=event).update(next_attempt_at=event.created)
    assert deliver_due() == ["delivered"]
    return list(server.received)


# --- The headers, verified with the Python library ---------------------------------------


@pytest.mark.django_db
def test_a_delivery_and_its_retry_verify_with_the_python_library(
    make_order: Callable[..., Order], server: ScriptedReceiver
) -> None:
    _, secret = webhook_endpoint_create(shop=shop_default(), url=server.url)
    event = paid(make_order())

    first, retry = delivered(event, server)

    for received in (first, retry):
        assert received.headers["webhook-id"] == str(event.pk)  # the same on the retry
        assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 30
        assert received.headers["webhook-signature"].startswith("v1,")
        assert signatures_in(received) == 1
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["User-Agent"].startswith("merchant-payments-webhooks/")
        assert "Merchant-Signature" not in received.headers
        assert verified(received, secret) == event.payload
    another = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    assert not verifies(first, another)


@pytest.mark.django_db
def test_new_secrets_are_whsec_and_the_standard_base64_of_32_bytes(
    server: ScriptedReceiver,
) -> None:
    endpoint, secret = webhook_endpoint_create(shop=shop_default(), url=server.url)
    new, _ = webhook_endpoint_rotate(endpoint=endpoint)

    for made in (secret, new):
        assert made.startswith("whsec_")
        assert len(base64.b64decode(made.removeprefix("whsec_"), validate=True)) == 32
    assert new != secret


@pytest.mark.django_db
def test_during_a_rotation_both_secrets_verify_the_same_delivery_in_python_and_node(
    make_order: Callable[..., Order], server: ScriptedReceiver
) -> None:
    endpoint, former = webhook_endpoint_create(shop=shop_default(), url=server.url)
    new, _ = webhook_endpoint_rotate(endpoint=endpoint, hours=1)
    event = paid(make_order())

    received = delivered(event, server)[-1]

    assert signatures_in(received) == 2
    new_signature = received.headers["webhook-signature"].split(" ")[0]
    assert verified(received, new) == verified(received, former) == event.payload
    alone = Received(received.path, {**received.headers, "webhook-signature": new_signature},
                     received.body)  # fmt: skip
    assert verifies(alone, new) and not verifies(alone, former)  # the new one comes first
    results = node_verified(npm_prefix(), [NodeCheck(received, new), NodeCheck(received, former)])
    assert [r["ok"] for r in results] == [True, True], results
    assert results[0]["payload"] == results[1]["payload"] == event.payload


@pytest.mark.django_db
def test_a_tampered_body_and_a_stale_timestamp_are_refused_in_python_and_node(
    make_order: Callable[..., Order], server: ScriptedReceiver
) -> None:
    _, secret = webhook_endpoint_create(shop=shop_default(), url=server.url)
    received = delivered(paid(make_order()), server)[-1]
    tampered = received.body.replace(b'"status":"paid"', b'"status":"PAID"', 1)
    assert tampered != received.body

    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verified(received, secret, body=tampered)
    with shop_clock_ahead(STALE), pytest.raises(WebhookVerificationError, match="too old"):
        verified(received, secret)
    with shop_clock_ahead(-STALE), pytest.raises(WebhookVerificationError, match="too new"):
        verified(received, secret)
    with shop_clock_ahead(4 * 60):  # within the tolerance
        assert verifies(received, secret)

    results = node_verified(
        npm_prefix(),
        [
            NodeCheck(received, secret),
            NodeCheck(received, secret, body=tampered),
            NodeCheck(received, secret, clock_offset_seconds=STALE),
            NodeCheck(received, secret, clock_offset_seconds=4 * 60),
        ],
    )
    assert [r["ok"] for r in results] == [True, False, False, True], results
    assert "No matching signature" in results[1]["error"]
    assert "too old" in results[2]["error"]


# --- Secrets made before Standard Webhooks -----------------------------------------------


@pytest.mark.django_db
def test_a_legacy_secret_signs_with_its_raw_bytes_and_the_check_says_to_rotate(
    make_order: Callable[..., Order], server: ScriptedReceiver
) -> None:
    shop = shop_default()
    endpoint, _ = webhook_endpoint_create(shop=shop, url=server.url)
    legacy = "whsec_" + secrets.token_urlsafe(32)  # how secrets were made before
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_sealed=seal(legacy))
    assert check_webhook_endpoint_secrets() == []  # no database named: not looked at

    (warning,) = check_webhook_endpoint_secrets(databases=["default"])
    received = delivered(paid(make_order()), server)[-1]

    assert warning.id == "payments.W402" and f"#{endpoint.pk} (shop {shop.name})" in warning.msg
    assert endpoint.url not in warning.msg and server.url not in warning.msg  # the deploy's log
    assert verifies(received, legacy, raw=True)
    results = node_verified(npm_prefix(), [NodeCheck(received, legacy, raw=True)])
    assert results[0]["ok"], results
    # Rotated, the endpoint has a standard secret and the warning is gone.
    webhook_endpoint_rotate(endpoint=endpoint, hours=0)
    assert check_webhook_endpoint_secrets(databases=["default"]) == []


@pytest.mark.django_db
def test_shop_webhook_secret_must_be_standard_or_it_is_a_warning(
    make_order: Callable[..., Order], server: ScriptedReceiver, settings: Any
) -> None:
    settings.SHOP_WEBHOOK_URL = server.url

    def ids() -> list[str]:
        return [m.id or "" for m in check_shop_events()]

    settings.SHOP_WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    assert ids() == []
    settings.SHOP_WEBHOOK_SECRET = ""
    assert ids() == ["payments.E004"]
    settings.SHOP_WEBHOOK_SECRET = plain = "a shared secret, not base64"
    assert ids() == ["payments.W401"]
    assert all(m.level == checks.WARNING for m in check_shop_events())

    received = delivered(paid(make_order()), server)[-1]
    assert verifies(received, plain, raw=True) and not verifies(received, plain + "x", raw=True)


# --- The payload, version 2 ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_payload_carries_the_order_as_the_orders_api_answers_it(
    make_order: Callable[..., Order], server: ScriptedReceiver, api_client: APIClient
) -> None:
    webhook_endpoint_create(shop=shop_default(), url=server.url)
    order = make_order(amount_int=1_250_000, currency="USD")
    order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="paid late")

    event = ShopEvent.objects.get(order=order, type="order.flagged")

    payload = json.loads(event.body)  # the bytes sent, in their order (jsonb keeps none)
    assert payload == event.payload
    assert list(payload) == ["id", "type", "version", "timestamp", "data"]
    assert payload["id"] == str(event.pk) and payload["version"] == 2
    assert payload["timestamp"].endswith("Z")
    assert list(payload["data"]) == ["order", "flag"]
    assert payload["data"]["flag"] == {"kind": "late", "detail": "paid late"}
    answer = api_client.get(f"/api/orders/{order.pk}/")
    assert answer.status_code == 200
    assert payload["data"]["order"] == answer.json()
    assert [f["kind"] for f in payload["data"]["order"]["flags"]] == ["late"]


def _event_schema() -> tuple[Draft202012Validator, dict[str, Any]]:
    """A validator of the webhook's body by the served OpenAPI schema, and its examples."""
    schema = SchemaGenerator().get_schema(public=True)
    assert schema["openapi"].startswith("3.1")
    body = schema["webhooks"]["shopEvent"]["post"]["requestBody"]["content"]["application/json"]
    registry = Registry().with_resource("urn:api", Resource.from_contents(schema, DRAFT202012))
    return Draft202012Validator(
        {"$ref": "urn:api#" + body["schema"]["$ref"].removeprefix("#")}, registry=registry
    ), body["examples"]


@pytest.mark.django_db
def test_the_events_and_the_ping_match_the_openapi_webhook_schema(
    make_order: Callable[..., Order], server: ScriptedReceiver
) -> None:
    endpoint, _ = webhook_endpoint_create(shop=shop_default(), url=server.url)
    order = make_order()
    paid(order)
    order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="x")
    service.shop_event_ping(endpoint=endpoint)
    validator, examples = _event_schema()

    payloads = [e.payload for e in ShopEvent.objects.order_by("created")]
    assert [p["type"] for p in payloads] == ["order.paid", "order.flagged", "ping"]
    assert payloads[-1]["data"] == {}
    for payload in [*payloads, *(e["value"] for e in examples.values())]:
        errors = [e.message for e in validator.iter_errors(payload)]
        assert errors == [], (payload["type"], errors)
    assert not validator.is_valid({**payloads[0], "version": 1})
