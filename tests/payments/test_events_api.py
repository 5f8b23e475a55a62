"""The events API: a shop lists its events and their deliveries and sends them again.

Over the Django test client with each shop's own API token. Shop A's token never
sees shop B's events (B's event id is the same 404 as a missing one, B's
endpoint id is refused like an unknown one); filters and cursor pages; redeliver
and replay really POST again to the shops' HTTP servers (tests/http_receiver.py),
each attempt made by the delivery service as a worker would. Bad input is a
400, never a 500. The error bodies get their shape from the API's exception
handler: here only the status, a JSON body and the field named are asserted.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from payments.api import events as events_api
from payments.models import ShopEvent, ShopEventDelivery
from payments.services.shop_events import shop_event_ping
from payments.services.webhook_endpoints import webhook_endpoint_create
from tests.factories import api_token_key
from tests.payments.events_world import OK, World, deliver_due, receiver

pytestmark = pytest.mark.django_db


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def fields_of(body: dict[str, Any]) -> dict[str, Any]:
    """The field errors, before or after the API's exception handler nests them."""
    nested = body.get("fields")
    return nested if isinstance(nested, dict) else body


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def newest_first(events: list[ShopEvent]) -> list[str]:
    return [str(event.pk) for event in reversed(events)]


# --- Listing ---------------------------------------------------------------------------


def test_the_list_is_the_callers_events_newest_first(world: World) -> None:
    assert ids(client_for(world.key_a).get("/api/events/")) == newest_first(world.events_a)
    assert ids(client_for(world.key_b).get("/api/events/")) == [str(world.event_b.pk)]  # type: ignore[union-attr]


def test_the_list_shows_each_event_as_delivered(world: World) -> None:
    first = client_for(world.key_a).get("/api/events/").json()["results"][0]
    event = world.events_a[-1]

    assert first["type"] == "order.paid" and first["order"] == str(event.order_id)
    assert first["payload"] == json.loads(world.good_server.received[-1].body)


def key_order(value: Any) -> list[str]:
    """Every key of a JSON document, depth first, in the order it has them."""
    if isinstance(value, dict):
        return [part for key, item in value.items() for part in (key, *key_order(item))]
    if isinstance(value, list):
        return [part for item in value for part in key_order(item)]
    return []


def as_jsonb(value: Any) -> Any:
    """The document with its keys as PostgreSQL's jsonb keeps them: shortest first."""
    if isinstance(value, dict):
        return {key: as_jsonb(value[key]) for key in sorted(value, key=lambda k: (len(k), k))}
    if isinstance(value, list):
        return [as_jsonb(item) for item in value]
    return value


def test_the_payload_keeps_the_delivered_bodys_key_order(world: World) -> None:
    event = world.events_a[-1]
    # What the jsonb column gives back on PostgreSQL (SQLite keeps the order as written).
    ShopEvent.objects.filter(pk=event.pk).update(payload=as_jsonb(event.payload))
    delivered = json.loads(world.good_server.received[-1].body)

    listed = client_for(world.key_a).get("/api/events/").json()["results"][0]
    shown = client_for(world.key_a).get(f"/api/events/{event.pk}/").json()

    assert listed["id"] == str(event.pk)
    assert key_order(listed["payload"]) == key_order(delivered) == key_order(shown["payload"])
    assert key_order(delivered) != key_order(as_jsonb(delivered))  # the test can tell them apart


def test_times_without_an_offset_are_utc_whatever_the_time_zone(
    world: World, settings: Any, enqueued: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    settings.TIME_ZONE = "Asia/Tokyo"  # nine hours from UTC: a naive time read there misses
    middle = world.events_a[1]

    def naive_utc(moment: Any) -> str:
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat()

    around = {
        "created_after": naive_utc(middle.created - timedelta(minutes=1)),
        "created_before": naive_utc(middle.created + timedelta(minutes=1)),
    }
    assert ids(client_for(world.key_a).get("/api/events/", around)) == [str(middle.pk)]
    with django_capture_on_commit_callbacks(execute=True):
        response = replay(
            world, {"since": around["created_after"], "until": around["created_before"]}
        )
    assert response.status_code == 202, response.content
    assert response.json() == {"deliveries": 1, "enqueued": 1}
    assert enqueued == [str(ShopEventDelivery.objects.get(event=middle, endpoint=world.bad).pk)]


def test_filters_by_type_order_and_time(world: World) -> None:
    client = client_for(world.key_a)
    oldest, cancelled, newest = world.events_a

    assert ids(client.get("/api/events/", {"type": "order.cancelled"})) == [str(cancelled.pk)]
    assert ids(client.get("/api/events/", {"type": "ping"})) == []
    assert ids(client.get("/api/events/", {"order": str(oldest.order_id)})) == [str(oldest.pk)]
    window = {
        "created_after": (cancelled.created - timedelta(minutes=1)).isoformat(),
        "created_before": (newest.created - timedelta(minutes=1)).isoformat(),
    }
    assert ids(client.get("/api/events/", window)) == [str(cancelled.pk)]
    # Another shop's order filters to nothing: its events are not the caller's.
    assert ids(client.get("/api/events/", {"order": str(world.event_b.order_id)})) == []  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "order.bogus"}, "type"),
        ({"order": "not-a-uuid"}, "order"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01T00:00:00Z"}, "created_before"),
        ({"created_after": "9999-12-31T23:59:59-14:00"}, "created_after"),
        (
            {"created_after": "2026-11-02T00:00:00Z", "created_before": "2026-11-01T00:00:00Z"},
            "created_before",
        ),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field(
    world: World, params: dict[str, str], field: str
) -> None:
    response = client_for(world.key_a).get("/api/events/", params)

    assert response.status_code == 400, response.content
    assert field in fields_of(response.json())


def test_cursor_pages_walk_every_event_once(world: World) -> None:
    client = client_for(world.key_a)
    seen: list[str] = []
    url: str | None = "/api/events/?page_size=2"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        seen += [row["id"] for row in page.json()["results"]]
        url = page.json()["next"]

    assert seen == newest_first(world.events_a)


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        base64.b64encode(b"p=garbage").decode(),
        base64.b64encode(b"p=2024-01-01 00:00:00").decode(),
        base64.b64encode(b"o=abc").decode(),
    ],
)
def test_a_forged_cursor_is_a_400(world: World, cursor: str) -> None:
    response = client_for(world.key_a).get("/api/events/", {"cursor": cursor})

    assert response.status_code == 400, response.content
    assert response.json()


# --- One event -------------------------------------------------------------------------


def test_an_event_shows_its_delivery_to_each_endpoint(world: World) -> None:
    event = world.events_a[-1]

    body = client_for(world.key_a).get(f"/api/events/{event.pk}/").json()

    assert body["payload"] == json.loads(world.bad_server.received[-1].body)
    by_endpoint = {row["endpoint"]["id"]: row for row in body["deliveries"]}
    assert set(by_endpoint) == {world.good.pk, world.bad.pk}
    good, bad = by_endpoint[world.good.pk], by_endpoint[world.bad.pk]
    assert (good["state"], good["attempts"], good["endpoint"]["url"]) == (
        "delivered",
        1,
        world.good_server.url,
    )
    assert good["delivered_at"] and good["last_attempt_at"] and good["next_attempt_at"] is None
    assert (bad["state"], bad["attempts"], bad["last_error"]) == ("failing", 1, "HTTP 500")
    assert bad["next_attempt_at"] and bad["given_up_at"] is None and bad["gives_up_at"]


def test_another_shops_event_is_the_same_404_as_a_missing_one(world: World) -> None:
    client = client_for(world.key_a)

    theirs = client.get(f"/api/events/{world.event_b.pk}/")  # type: ignore[union-attr]
    missing = client.get(f"/api/events/{uuid.uuid4()}/")

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    redeliver = client.post(f"/api/events/{world.event_b.pk}/redeliver/", {}, format="json")  # type: ignore[union-attr]
    assert redeliver.status_code == 404


@pytest.mark.parametrize("path", ["/api/events/{}/", "/api/events/{}/redeliver/"])
def test_an_event_id_that_is_not_a_uuid_is_a_400(world: World, path: str) -> None:
    client = client_for(world.key_a)
    url = path.format("not-a-uuid")

    response = client.post(url, {}, format="json") if "redeliver" in url else client.get(url)

    assert response.status_code == 400, response.content
    assert "event_id" in fields_of(response.json())


# --- Redeliver -------------------------------------------------------------------------


def redeliver(world: World, event: ShopEvent, body: dict[str, Any] | None = None) -> Any:
    return client_for(world.key_a).post(
        f"/api/events/{event.pk}/redeliver/", body or {}, format="json"
    )


def test_redeliver_sends_the_event_again_to_each_endpoint_that_did_not_take_it(
    world: World, enqueued: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    event = world.events_a[-1]
    ShopEventDelivery.objects.filter(event=event, endpoint=world.bad).update(
        given_up_at=timezone.now(), next_attempt_at=None
    )
    world.bad_server.replies[:] = [(200, b"", 0.0)]

    with django_capture_on_commit_callbacks(execute=True):
        response = redeliver(world, event)

    assert response.status_code == 202, response.content
    answer = response.json()
    assert answer["event"] == str(event.pk) and answer["enqueued"] == 1
    assert [row["endpoint"]["id"] for row in answer["deliveries"]] == [world.bad.pk]
    to_bad = ShopEventDelivery.objects.get(event=event, endpoint=world.bad)
    assert enqueued == [str(to_bad.pk)]
    assert to_bad.gives_up_at > timezone.now() + timedelta(hours=23)
    sent_before = len(world.good_server.received)
    assert deliver_due() == ["delivered"]
    assert world.bad_server.received[-1].body == event.body.encode()
    assert len(world.good_server.received) == sent_before  # it took it: not sent again


def test_redeliver_to_one_endpoint_sends_even_a_delivered_event_again(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    event = world.events_a[-1]
    before = len(world.good_server.received)

    with django_capture_on_commit_callbacks(execute=True):
        response = redeliver(world, event, {"endpoint": world.good.pk})

    assert response.status_code == 202, response.content
    assert [row["state"] for row in response.json()["deliveries"]] == ["pending"]
    # Only that endpoint: the failing one is not made due by this request.
    assert deliver_due() == ["delivered"]
    again = world.good_server.received[before:]
    assert [r.body for r in again] == [event.body.encode()]
    row = ShopEventDelivery.objects.get(event=event, endpoint=world.good)
    assert row.attempts == 2 and row.attempt_log.count() == 2 and row.delivered_at is not None


def test_redeliver_to_an_endpoint_made_after_the_event_makes_its_delivery(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    event = world.events_a[-1]
    late_server = receiver(OK)
    try:
        late, _ = webhook_endpoint_create(shop=world.shop_a, url=late_server.url)
        picky, _ = webhook_endpoint_create(
            shop=world.shop_a, url=late_server.url, event_types=["order.refunded"]
        )
        with django_capture_on_commit_callbacks(execute=True):
            response = redeliver(world, event, {"endpoint": late.pk})
        refused = redeliver(world, event, {"endpoint": picky.pk})

        assert response.status_code == 202, response.content
        assert "delivered" in deliver_due()
        assert [r.body for r in late_server.received] == [event.body.encode()]
        # Its filter does not take the event's type: refused, nothing made.
        assert refused.status_code == 400 and "endpoint" in fields_of(refused.json())
        assert not ShopEventDelivery.objects.filter(event=event, endpoint=picky).exists()
    finally:
        late_server.stop()


@pytest.mark.parametrize("endpoint", ["theirs", "missing", "text"])
def test_redeliver_refuses_an_endpoint_not_of_the_callers_shop(
    world: World, enqueued: list[str], endpoint: str
) -> None:
    event = world.events_a[-1]
    given = {"theirs": world.other.pk, "missing": 999_999, "text": "one"}[endpoint]

    response = redeliver(world, event, {"endpoint": given})

    assert response.status_code == 400, response.content
    assert "endpoint" in fields_of(response.json())
    assert not ShopEventDelivery.objects.filter(event=event, endpoint=world.other).exists()
    assert enqueued == []


# --- Replay ----------------------------------------------------------------------------


def replay(world: World, body: dict[str, Any], key: str | None = None) -> Any:
    return client_for(key or world.key_a).post("/api/events/replay/", body, format="json")


def test_replay_sends_the_failed_deliveries_of_the_range_again(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    oldest, middle, newest = world.events_a
    ShopEventDelivery.objects.filter(endpoint=world.bad, event=oldest).update(
        given_up_at=timezone.now(), next_attempt_at=None
    )
    world.bad_server.replies[:] = [(204, b"", 0.0)]
    seen_before = len(world.bad_server.received)
    since = (oldest.created - timedelta(minutes=1)).isoformat()
    until = (newest.created - timedelta(minutes=1)).isoformat()  # the newest is left out

    with django_capture_on_commit_callbacks(execute=True):
        response = replay(world, {"since": since, "until": until})

    assert response.status_code == 202, response.content
    assert response.json() == {"deliveries": 2, "enqueued": 2}
    assert deliver_due() == ["delivered", "delivered"]
    resent = {r.body for r in world.bad_server.received[seen_before:]}
    assert resent == {oldest.body.encode(), middle.body.encode()}
    newest_to_bad = ShopEventDelivery.objects.get(event=newest, endpoint=world.bad)
    assert newest_to_bad.delivered_at is None  # outside the range: still waiting its backoff


def test_replay_to_one_endpoint_leaves_the_others_alone(
    world: World, enqueued: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    since = (timezone.now() - timedelta(days=5)).isoformat()
    until = timezone.now().isoformat()

    with django_capture_on_commit_callbacks(execute=True):
        none_failed = replay(world, {"since": since, "until": until, "endpoint": world.good.pk})

    assert none_failed.status_code == 202
    assert none_failed.json() == {"deliveries": 0, "enqueued": 0}
    assert enqueued == []


def test_replay_never_touches_another_shops_deliveries(
    world: World, enqueued: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    ShopEventDelivery.objects.filter(endpoint=world.other).update(
        delivered_at=None, given_up_at=timezone.now(), last_error="HTTP 500"
    )
    body = {
        "since": (timezone.now() - timedelta(days=5)).isoformat(),
        "until": (timezone.now() + timedelta(days=1)).isoformat(),
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = replay(world, body)
    refused = replay(world, {**body, "endpoint": world.other.pk})

    assert response.status_code == 202
    assert response.json()["deliveries"] == 3  # shop A's three failing ones only
    assert ShopEventDelivery.objects.get(endpoint=world.other).given_up_at is not None
    assert refused.status_code == 400 and "endpoint" in fields_of(refused.json())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "2026-11-02T00:00:00Z"}, "since"),
        ({"since": "2026-11-02T00:00:00Z", "until": "soon"}, "until"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"since": "2026-11-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "until"),
        ({"since": "0001-01-01T00:00:00+14:00", "until": "2026-03-01T00:00:00Z"}, "since"),
    ],
)
def test_a_bad_replay_is_a_400_naming_the_field(
    world: World, enqueued: list[str], body: dict[str, str], field: str
) -> None:
    response = replay(world, body)

    assert response.status_code == 400, response.content
    assert field in fields_of(response.json())
    assert enqueued == []


def test_a_replay_of_too_many_deliveries_is_refused(
    world: World, enqueued: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_api, "REPLAY_MAX_DELIVERIES", 2)
    body = {
        "since": (timezone.now() - timedelta(days=5)).isoformat(),
        "until": timezone.now().isoformat(),
    }

    before = dict(ShopEventDelivery.objects.values_list("pk", "next_attempt_at"))

    response = replay(world, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "replay_too_large"
    assert enqueued == []
    assert dict(ShopEventDelivery.objects.values_list("pk", "next_attempt_at")) == before


def test_a_replay_never_sends_a_failed_ping_again(
    world: World, enqueued: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    ping = shop_event_ping(endpoint=world.bad)  # the bad endpoint answers 500: given up at once
    assert ping is not None and not ping.ok
    body = {
        "since": (timezone.now() - timedelta(days=5)).isoformat(),
        "until": (timezone.now() + timedelta(minutes=1)).isoformat(),
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = replay(world, body)

    assert response.status_code == 202, response.content
    assert response.json() == {"deliveries": 3, "enqueued": 3}  # the three events, no ping
    assert str(ping.delivery_id) not in enqueued
    assert ShopEventDelivery.objects.get(pk=ping.delivery_id).given_up_at is not None


# --- Tokens and the schema ---------------------------------------------------------------


def test_a_read_only_token_may_read_but_not_send_again(world: World, enqueued: list[str]) -> None:
    reader = client_for(api_token_key(shop=world.shop_a, name="reader", read_only=True))
    event = world.events_a[-1]

    assert reader.get("/api/events/").status_code == 200
    assert reader.get(f"/api/events/{event.pk}/").status_code == 200
    assert reader.post(f"/api/events/{event.pk}/redeliver/", {}, format="json").status_code == 403
    body = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"}
    assert reader.post("/api/events/replay/", body, format="json").status_code == 403
    assert enqueued == []


def test_without_a_token_every_events_path_is_a_401(world: World) -> None:
    client = APIClient()
    event = world.events_a[-1]

    assert client.get("/api/events/").status_code == 401
    assert client.get(f"/api/events/{event.pk}/").status_code == 401
    assert client.post(f"/api/events/{event.pk}/redeliver/").status_code == 401
    assert client.post("/api/events/replay/").status_code == 401


def test_the_schema_describes_the_events_api(client: Any) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()

    operations = {
        ("/api/events/", "get"): "200",
        ("/api/events/{event_id}/", "get"): "200",
        ("/api/events/{event_id}/redeliver/", "post"): "202",
        ("/api/events/replay/", "post"): "202",
    }
    for (path, method), ok in operations.items():
        operation = schema["paths"][path][method]
        assert operation["summary"] and operation["description"]
        assert ok in operation["responses"] and "400" in operation["responses"]
        assert operation["responses"][ok]["content"]["application/json"].get("examples")
        if method == "post":
            assert operation["requestBody"]["content"]["application/json"]["examples"]
