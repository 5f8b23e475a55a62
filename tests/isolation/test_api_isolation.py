"""Shop isolation over HTTP: the API and the notifications, tried with the other shop's keys."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from payments import tasks
from payments.models import (
    Notification,
    Order,
    Payment,
    ShopEvent,
    ShopEventDelivery,
    WebhookEndpoint,
)
from payments.services.shop_events import shop_event_deliver
from payments.services.webhook_endpoints import webhook_endpoint_create
from payments.testing import ipn_body, post_ipn_http
from tests.http_receiver import ScriptedReceiver, scripted
from tests.isolation.conftest import ShopSide

# Every API operation and how this suite tries it; a new endpoint fails the guard below
# until it is tried here too.
API_ROUTES_TRIED = {
    "api-orders",
    "api-order",
    "api-events",
    "api-event",
    "api-event-redeliver",
    "api-events-replay",
    "api-schema",
    "api-docs",
}


def _api_route_names() -> set[str]:
    names: set[str] = set()
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and str(entry.pattern) == "api/":
            names |= {p.name for p in entry.url_patterns if isinstance(p, URLPattern) and p.name}
    return names


def test_every_api_route_is_tried_by_this_suite() -> None:
    assert _api_route_names() == API_ROUTES_TRIED


def _list_ids(side: ShopSide, query: str = "") -> set[str]:
    response = side.api.get(f"{side.base_url}/api/orders/{query}", timeout=30)
    assert response.status_code == 200, response.text
    return {order["id"] for order in response.json()["results"]}


def test_a_shop_lists_only_its_own_orders(two_shops: tuple[ShopSide, ShopSide]) -> None:
    alpha, beta = two_shops
    assert _list_ids(alpha) == alpha.order_ids
    assert _list_ids(beta) == beta.order_ids
    for reference in alpha.references:
        assert _list_ids(beta, f"?reference={reference}") == set()
    for status in ("paid", "awaiting_payment", "created", "failed"):
        assert _list_ids(beta, f"?status={status}") <= beta.order_ids


def test_another_shops_order_is_a_404_like_a_missing_one(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    missing = beta.api.get(f"{beta.base_url}/api/orders/{uuid.uuid4()}/", timeout=30)
    assert missing.status_code == 404
    for order_id in alpha.order_ids:
        theirs = beta.api.get(f"{beta.base_url}/api/orders/{order_id}/", timeout=30)
        assert (theirs.status_code, theirs.json()) == (404, missing.json())
        assert order_id not in theirs.text


def test_an_idempotency_key_never_returns_another_shops_order(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    body = {"reference": "same-ref", "amount": "1.00", "currency": "USD"}
    headers = {"Idempotency-Key": "shared-key-1"}
    first = alpha.api.post(f"{alpha.base_url}/api/orders/", json=body, headers=headers, timeout=30)
    second = beta.api.post(f"{beta.base_url}/api/orders/", json=body, headers=headers, timeout=30)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert Order.objects.get(pk=second.json()["id"]).shop_id == beta.shop.pk


def test_the_schema_and_docs_answer_each_shops_token_alike(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    for path in ("/api/schema/", "/api/docs/"):
        answers = [side.api.get(f"{side.base_url}{path}", timeout=30) for side in (alpha, beta)]
        assert [a.status_code for a in answers] == [200, 200]
        for reference in alpha.references | beta.references:
            assert all(reference not in answer.text for answer in answers)
        if path == "/api/schema/":  # the docs page carries a per-request nonce
            assert answers[0].content == answers[1].content


def test_no_token_and_a_made_up_token_see_nothing(two_shops: tuple[ShopSide, ShopSide]) -> None:
    alpha, _ = two_shops
    anonymous = requests.get(f"{alpha.base_url}/api/orders/", timeout=30)
    forged = requests.get(
        f"{alpha.base_url}/api/orders/",
        headers={"Authorization": "Token mp_not-a-token"},
        timeout=30,
    )
    assert (anonymous.status_code, forged.status_code) == (401, 401)


def test_a_notification_signed_with_one_shops_key_for_anothers_order_changes_nothing(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    target = next(o for o in beta.orders if o["currency"] == "EUR")  # awaiting payment
    before = Order.objects.get(pk=target["id"])
    body = ipn_body(transaction=target["transaction"], status="paid", amount_int=10**9)
    response = post_ipn_http(
        alpha.base_url, body, api_key=str(alpha.account.api_key), api_secret=alpha.account.secret
    )
    assert (response.status_code, response.content) == (200, b"[OK]")  # authentic: stored

    after = Order.objects.get(pk=target["id"])
    assert (after.status, after.updated) == (before.status, before.updated)
    assert not Payment.objects.filter(order_id=target["id"]).exists()
    stored = Notification.objects.get(body_sha256=hashlib.sha256(body).hexdigest())
    assert (stored.shop_id, stored.order_id) == (alpha.shop.pk, None)
    assert (stored.outcome, stored.needs_review) == ("flagged", True)


def test_a_notification_with_one_shops_key_and_anothers_secret_is_refused(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    target = next(o for o in beta.orders if o["currency"] == "EUR")
    body = ipn_body(transaction=target["transaction"], status="paid", amount_int=10**9)
    response = post_ipn_http(
        alpha.base_url, body, api_key=str(alpha.account.api_key), api_secret=beta.account.secret
    )
    assert response.status_code == 403
    assert Order.objects.get(pk=target["id"]).status == "awaiting_payment"


def test_checkout_pages_open_nothing_more_to_another_shops_token(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    """Checkout pages are the payer's, found by the order's random id: another shop's
    token neither opens more of them nor anything else, and the status answer is the same."""
    alpha, beta = two_shops
    for order_id in alpha.order_ids:
        for path in (f"/checkout/{order_id}/", f"/checkout/{order_id}/status/"):
            payer = requests.get(f"{alpha.base_url}{path}", timeout=30)
            other = beta.api.get(f"{beta.base_url}{path}", timeout=30)
            assert payer.status_code == other.status_code == 200, path
            if path.endswith("status/"):
                assert other.json() == payer.json()
                assert set(other.json()) == {"status", "label", "final"}  # no shop, no amounts


# --- Events: each shop's events and endpoints, tried with the other shop's token ---------


@dataclass
class EventSide:
    side: ShopSide
    endpoint: WebhookEndpoint
    server: ScriptedReceiver
    event_ids: set[str]


@pytest.fixture
def shop_events(
    two_shops: tuple[ShopSide, ShopSide], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[tuple[EventSide, EventSide]]:
    """An endpoint per shop that answers 500, and an event of each shop tried there once."""
    settings.SHOP_WEBHOOK_TIMEOUT = 1.0
    # The live server runs in this process: the delivery tasks are captured, not published.
    monkeypatch.setattr(tasks.deliver_shop_event, "apply_async", lambda args, **kw: None)
    sides = []
    for side in two_shops:
        server = ScriptedReceiver(scripted(((500, b"no"),)), path="/hooks").start()
        endpoint, _ = webhook_endpoint_create(shop=side.shop, url=server.url)
        order = side.create("EUR", "2.00")  # order.awaiting_payment, over the API
        events = ShopEvent.objects.filter(order_id=order["id"])
        sides.append(
            EventSide(
                side, endpoint, server, {str(pk) for pk in events.values_list("pk", flat=True)}
            )
        )
    for delivery_id in ShopEventDelivery.objects.values_list("pk", flat=True):
        shop_event_deliver(delivery_id=delivery_id)
    yield sides[0], sides[1]
    for event_side in sides:
        event_side.server.stop()


def _event_ids(side: ShopSide, query: str = "") -> set[str]:
    response = side.api.get(f"{side.base_url}/api/events/{query}", timeout=30)
    assert response.status_code == 200, response.text
    return {event["id"] for event in response.json()["results"]}


def test_a_shop_lists_only_its_own_events(shop_events: tuple[EventSide, EventSide]) -> None:
    alpha, beta = shop_events
    assert alpha.event_ids and beta.event_ids
    assert _event_ids(alpha.side) == alpha.event_ids
    assert _event_ids(beta.side) == beta.event_ids
    for order_id in alpha.side.order_ids:
        assert _event_ids(beta.side, f"?order={order_id}") == set()


def test_another_shops_event_is_a_404_like_a_missing_one(
    shop_events: tuple[EventSide, EventSide],
) -> None:
    alpha, beta = shop_events
    api, base = beta.side.api, beta.side.base_url
    missing = api.get(f"{base}/api/events/{uuid.uuid4()}/", timeout=30)
    assert missing.status_code == 404
    for event_id in alpha.event_ids:
        theirs = api.get(f"{base}/api/events/{event_id}/", timeout=30)
        assert (theirs.status_code, theirs.json()) == (404, missing.json())
        again = api.post(f"{base}/api/events/{event_id}/redeliver/", json={}, timeout=30)
        assert again.status_code == 404
    untouched = ShopEventDelivery.objects.get(endpoint=alpha.endpoint)
    assert untouched.attempts == 1 and untouched.gives_up_at < timezone.now() + timedelta(days=2)


def test_another_shops_endpoint_is_refused_and_its_deliveries_left_alone(
    shop_events: tuple[EventSide, EventSide],
) -> None:
    alpha, beta = shop_events
    api, base = beta.side.api, beta.side.base_url
    before = ShopEventDelivery.objects.get(endpoint=alpha.endpoint).next_attempt_at
    own_event = next(iter(beta.event_ids))
    to_theirs = api.post(
        f"{base}/api/events/{own_event}/redeliver/",
        json={"endpoint": alpha.endpoint.pk},
        timeout=30,
    )
    window = {
        "since": (timezone.now() - timedelta(hours=1)).isoformat(),
        "until": (timezone.now() + timedelta(hours=1)).isoformat(),
    }
    replay_theirs = api.post(
        f"{base}/api/events/replay/", json={**window, "endpoint": alpha.endpoint.pk}, timeout=30
    )
    replay_own = api.post(f"{base}/api/events/replay/", json=window, timeout=30)

    assert (to_theirs.status_code, replay_theirs.status_code) == (400, 400)
    assert (replay_own.status_code, replay_own.json()["deliveries"]) == (202, 1)
    assert not ShopEventDelivery.objects.filter(
        endpoint=alpha.endpoint, event_id=uuid.UUID(own_event)
    ).exists()
    assert ShopEventDelivery.objects.get(endpoint=alpha.endpoint).next_attempt_at == before
