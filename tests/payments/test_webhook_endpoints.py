"""Webhook endpoints per shop: each shop's events go to its own endpoints, each signed by its own
secret; the filter, on/off, the rotation, the ping; SHOP_WEBHOOK_URL as the default shop's one.

Every shop is a real HTTP server in a thread on 127.0.0.1 (tests.http_receiver).
Most tests make each attempt by calling the delivery service and move
`next_attempt_at` to now to stand for the time between attempts; the last test
runs a real Celery worker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from payments.choices import SHOP_EVENT_TYPES
from payments.models import (
    Order,
    OrderFlag,
    Shop,
    ShopEvent,
    ShopEventDelivery,
    WebhookEndpoint,
)
from payments.secret_box import unseal
from payments.services import order_flag, order_transition
from payments.services import shop_events as service
from payments.services.shops import shop_create
from payments.services.webhook_endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_rotate,
    webhook_endpoint_set_enabled,
    webhook_endpoint_sync_settings,
)
from payments.shops import shop_default
from payments.states import ALLOWED_TRANSITIONS, OrderStatus
from tests.http_receiver import ScriptedReceiver, scripted
from tests.payments.events_world import deliver_due
from tests.standard_webhooks import signatures_in, verifies

OK = (204, b"")
GATEWAY_SECRET = "c2hvcC1iLWdhdGV3YXktc2VjcmV0LWZvci10aGUtdGVzdHMtb25seQ=="
# SHOP_WEBHOOK_SECRET values: Standard Webhooks secrets ("whsec_" + base64 of 32 bytes).
ENV_SECRET_1 = "whsec_ZnJvbS10aGUtZW52aXJvbm1lbnQtbnVtYmVyLW9uZSE="
ENV_SECRET_2 = "whsec_ZnJvbS10aGUtZW52aXJvbm1lbnQtbnVtYmVyLXR3byE="
ENV_SECRET_BEFORE_0007 = "whsec_c2V0LWJlZm9yZS1taWdyYXRpb24tMDAwNy1yYW4hISE="
ENV_SECRET_LATER = "whsec_c2V0LWxhdGVyLXRoYW4tdGhlLWZpcnN0LWRlcGxveSE="
OTHER_SECRET = "whsec_YW5vdGhlci1zZWNyZXQtb2YtdGhpcnR5LXR3by1ieXQ="


# --- Shops, receivers, endpoints ---------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Callable[..., ScriptedReceiver]]:
    """`receiver(OK)` or `receiver((500, b"no"), OK)`: a shop's HTTP server, stopped after."""
    started: list[ScriptedReceiver] = []

    def start(*replies: tuple[int, bytes] | tuple[int, bytes, float]) -> ScriptedReceiver:
        server = ScriptedReceiver(scripted(replies or (OK,)), path="/hooks").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _quick(settings: Any) -> None:
    settings.SHOP_WEBHOOK_TIMEOUT = 1.0
    settings.SHOP_WEBHOOK_RETRY_HOURS = 24


def another_shop(name: str = "shop-b") -> Shop:
    return shop_create(name=name, gateway_key=uuid.uuid4(), gateway_secret=GATEWAY_SECRET)


def endpoint_to(
    server: ScriptedReceiver, shop: Shop | None = None, **options: Any
) -> tuple[WebhookEndpoint, str]:
    return webhook_endpoint_create(shop=shop or shop_default(), url=server.url, **options)


def paid(order: Order) -> ShopEvent:
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
    return ShopEvent.objects.get(order=order, type="order.paid")


# --- Routing: each shop's events to its own endpoints ------------------------------------


@pytest.mark.django_db
def test_each_shop_gets_only_its_own_shops_events(
    make_order: Callable[..., Order], receiver: Callable[..., ScriptedReceiver]
) -> None:
    shop_b = another_shop()
    server_a, server_b = receiver(OK), receiver(OK)
    _, secret_a = endpoint_to(server_a)
    _, secret_b = endpoint_to(server_b, shop_b)
    order_a, order_b = make_order(reference="order-a"), make_order(reference="order-b", shop=shop_b)

    event_a, event_b = paid(order_a), paid(order_b)
    assert deliver_due() == ["delivered", "delivered"]

    assert [r.headers["webhook-id"] for r in server_a.received] == [str(event_a.pk)]
    assert [r.headers["webhook-id"] for r in server_b.received] == [str(event_b.pk)]
    assert json.loads(server_b.received[0].body)["data"]["order"]["reference"] == "order-b"
    assert (event_a.shop_id, event_b.shop_id) == (order_a.shop_id, shop_b.pk)
    # Each signed by its own endpoint's secret only.
    assert verifies(server_a.received[0], secret_a) and not verifies(server_a.received[0], secret_b)
    assert verifies(server_b.received[0], secret_b) and not verifies(server_b.received[0], secret_a)


@pytest.mark.django_db
def test_a_shop_without_an_endpoint_records_no_event(
    make_order: Callable[..., Order], receiver: Callable[..., ScriptedReceiver]
) -> None:
    endpoint_to(receiver(OK))  # the default shop's
    order_b = make_order(shop=another_shop())

    order_transition(order_id=order_b.pk, to=OrderStatus.PAID, reason="test")

    assert not ShopEvent.objects.filter(order=order_b).exists()


@pytest.mark.django_db
def test_two_endpoints_of_a_shop_get_the_same_event_id_and_bytes(
    make_order: Callable[..., Order], receiver: Callable[..., ScriptedReceiver]
) -> None:
    shop_b = another_shop()
    first, second = receiver(OK), receiver(OK)
    _, secret_1 = endpoint_to(first, shop_b, description="orders")
    _, secret_2 = endpoint_to(second, shop_b, description="accounting")

    event = paid(make_order(shop=shop_b))
    assert deliver_due() == ["delivered", "delivered"]

    (one,), (two,) = first.received, second.received
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == str(event.pk)
    assert one.body == two.body == event.body.encode()
    assert verifies(one, secret_1) and not verifies(one, secret_2)
    assert verifies(two, secret_2) and not verifies(two, secret_1)
    assert event.deliveries.count() == 2


@pytest.mark.django_db
def test_the_filter_takes_only_the_types_it_names(
    make_order: Callable[..., Order],
    receiver: Callable[..., ScriptedReceiver],
    django_capture_on_commit_callbacks: Any,
    enqueued: list[str],
) -> None:
    every, only_paid = receiver(OK), receiver(OK)
    endpoint_to(every)
    endpoint_to(only_paid, event_types=["order.paid", "order.flagged"])
    order, other = make_order(), make_order(status=OrderStatus.AWAITING_PAYMENT)

    order_transition(order_id=order.pk, to=OrderStatus.CONFIRMING, reason="test")
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
    order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="x")
    with django_capture_on_commit_callbacks(execute=True):  # the sweeps' bulk recorder
        service.shop_events_record_many(order_ids=[other.pk], event_type="order.expired")
    deliver_due()

    def types(server: ScriptedReceiver) -> list[str]:
        return [json.loads(r.body)["type"] for r in server.received]

    assert types(every) == ["order.confirming", "order.paid", "order.flagged", "order.expired"]
    assert types(only_paid) == ["order.paid", "order.flagged"]


def test_the_event_types_a_filter_names_are_every_change_an_order_can_go_through() -> None:
    reachable = {f"order.{to}" for _, to in ALLOWED_TRANSITIONS}
    assert set(SHOP_EVENT_TYPES) == reachable | {
        "order.flagged",
        "order.resolved",
        "order.refunded",
    }


@pytest.mark.django_db
def test_a_filter_with_an_unknown_type_or_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown event type.*order\.payed"):
        webhook_endpoint_create(
            shop=shop_default(), url="https://x.example/", event_types=["order.payed"]
        )
    with pytest.raises(ValueError, match="url"):
        webhook_endpoint_create(shop=shop_default(), url="ftp://x.example/")
    assert not WebhookEndpoint.objects.exists()


# --- On and off --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_disabled_endpoint_gets_nothing_and_its_pending_deliveries_wait(
    make_order: Callable[..., Order],
    receiver: Callable[..., ScriptedReceiver],
    django_capture_on_commit_callbacks: Any,
    enqueued: list[str],
) -> None:
    server, other = receiver(OK), receiver(OK)
    endpoint, _ = endpoint_to(server)
    endpoint_to(other)
    waiting = paid(make_order())  # recorded while it was on, not sent yet
    assert webhook_endpoint_set_enabled(endpoint=endpoint, enabled=False)

    later = paid(make_order())
    assert sorted(deliver_due()) == ["delivered", "delivered", "skipped"]
    assert service.shop_events_redeliver_due(grace_seconds=0) == []

    assert server.received == []
    assert len(other.received) == 2
    assert not later.deliveries.filter(endpoint=endpoint).exists()  # never meant for it
    pending = waiting.deliveries.get(endpoint=endpoint)
    assert pending.state == ShopEventDelivery.State.PENDING and pending.attempts == 0

    # On again: the sweep sends what waited.
    assert webhook_endpoint_set_enabled(endpoint=endpoint, enabled=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert service.shop_events_redeliver_due(grace_seconds=0) == [pending.pk]
    assert enqueued[-1] == str(pending.pk)
    assert service.shop_event_deliver(delivery_id=pending.pk).result == "delivered"
    assert [r.headers["webhook-id"] for r in server.received] == [str(waiting.pk)]


# --- Rotation ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one(
    make_order: Callable[..., Order], receiver: Callable[..., ScriptedReceiver]
) -> None:
    server = receiver(OK)
    endpoint, old = endpoint_to(server)

    new, expires = webhook_endpoint_rotate(endpoint=endpoint)
    paid(make_order())
    deliver_due()

    assert new != old
    assert timedelta(hours=23, minutes=59) < expires - timezone.now() <= timedelta(hours=24)
    during = server.received[0]
    assert signatures_in(during) == 2  # one header, two v1 values under one timestamp
    assert verifies(during, new) and verifies(during, old)
    assert not verifies(during, OTHER_SECRET)

    # The window is over.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    paid(make_order())
    deliver_due()

    after = server.received[1]
    assert signatures_in(after) == 1
    assert verifies(after, new) and not verifies(after, old)


@pytest.mark.django_db
def test_the_rotation_window_is_the_setting_or_the_hours_given(
    receiver: Callable[..., ScriptedReceiver], settings: Any
) -> None:
    endpoint, first = endpoint_to(receiver(OK))
    settings.SHOP_WEBHOOK_ROTATION_HOURS = 2

    second, expires = webhook_endpoint_rotate(endpoint=endpoint)
    assert timedelta(hours=1, minutes=59) < expires - timezone.now() <= timedelta(hours=2)
    third, expires = webhook_endpoint_rotate(endpoint=endpoint, hours=0.5)
    assert timedelta(minutes=29) < expires - timezone.now() <= timedelta(minutes=30)

    endpoint.refresh_from_db()
    # Only the latest former secret signs: a second rotation ends the first one's window.
    assert unseal(endpoint.secret_sealed) == third
    assert unseal(endpoint.previous_secret_sealed) == second
    assert first not in (endpoint.secret_sealed, endpoint.previous_secret_sealed)
    with pytest.raises(ValueError, match="hours"):
        webhook_endpoint_rotate(endpoint=endpoint, hours=-1)


# --- Ping --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_ping_is_sent_now_signed_and_its_answer_shown(
    receiver: Callable[..., ScriptedReceiver],
) -> None:
    server = receiver((200, b"pong from the shop"))
    endpoint, secret = endpoint_to(server, event_types=["order.paid"])  # a ping goes anyway
    webhook_endpoint_set_enabled(endpoint=endpoint, enabled=False)  # to test before switching on

    attempt = service.shop_event_ping(endpoint=endpoint)

    assert attempt is not None
    assert (attempt.ok, attempt.http_status, attempt.reply) == (True, 200, "pong from the shop")
    (received,) = server.received
    body = json.loads(received.body)
    assert body["type"] == "ping" and body["version"] == 2 and body["data"] == {}
    assert received.headers["webhook-id"] == body["id"]
    assert verifies(received, secret)
    # Kept among the endpoint's deliveries.
    delivery = endpoint.deliveries.get()
    assert delivery.state == ShopEventDelivery.State.DELIVERED
    assert delivery.event.order is None and delivery.event.shop_id == endpoint.shop_id


@pytest.mark.django_db
def test_a_failed_ping_shows_why_and_is_never_retried(
    receiver: Callable[..., ScriptedReceiver],
) -> None:
    server = receiver((503, b"maintenance"))
    endpoint, _ = endpoint_to(server)

    attempt = service.shop_event_ping(endpoint=endpoint)

    assert attempt is not None and not attempt.ok
    assert (attempt.http_status, attempt.reply) == (503, "maintenance")
    assert endpoint.deliveries.get().state == ShopEventDelivery.State.GIVEN_UP
    assert service.shop_events_redeliver_due(grace_seconds=0) == []
    assert len(server.received) == 1


# --- Failures stay with their endpoint ------------------------------------------------


@pytest.mark.django_db
def test_a_failing_endpoint_retries_on_its_own_without_holding_up_the_other(
    make_order: Callable[..., Order], receiver: Callable[..., ScriptedReceiver]
) -> None:
    failing, working = receiver((500, b"down"), (500, b"down"), OK), receiver(OK)
    bad, _ = endpoint_to(failing)
    good, _ = endpoint_to(working)

    event = paid(make_order())
    second = paid(make_order())
    deliver_due()  # two failures at `failing`, two deliveries at `working`

    assert len(working.received) == 2
    assert event.deliveries.get(endpoint=good).state == ShopEventDelivery.State.DELIVERED
    to_bad = event.deliveries.get(endpoint=bad)
    assert (to_bad.state, to_bad.attempts, to_bad.last_error) == ("failing", 1, "HTTP 500")
    assert to_bad.next_attempt_at is not None and to_bad.next_attempt_at > timezone.now()

    # Its backoff over, the failing one is tried again; the other is not sent anything again.
    ShopEventDelivery.objects.filter(endpoint=bad).update(next_attempt_at=timezone.now())
    assert sorted(deliver_due()) == ["delivered", "delivered"]
    assert len(working.received) == 2 and len(failing.received) == 4
    assert {r.headers["webhook-id"] for r in failing.received[2:]} == {
        str(event.pk),
        str(second.pk),
    }


@pytest.mark.worker
def test_a_real_worker_delivers_each_shops_events_to_its_endpoints(
    start_worker: Callable[..., Any],
    make_order: Callable[..., Order],
    receiver: Callable[..., ScriptedReceiver],
) -> None:
    shop_b = another_shop()
    default_server, b_server = receiver(OK), receiver(OK)
    b_failing = receiver((500, b"down"))
    _, default_secret = endpoint_to(default_server)
    _, b_secret = endpoint_to(b_server, shop_b)
    failing_endpoint, _ = endpoint_to(b_failing, shop_b)
    start_worker("endpoints")
    order_a, order_b = make_order(), make_order(shop=shop_b)

    event_a, event_b = paid(order_a), paid(order_b)  # committed: enqueued to the worker

    def settled() -> bool:
        """Two delivered, and the failing endpoint's first attempt recorded (not only sent)."""
        delivered = ShopEventDelivery.objects.filter(delivered_at__isnull=False).count()
        failed = failing_endpoint.deliveries.filter(attempt_log__isnull=False).exists()
        return delivered == 2 and failed

    deadline = time.monotonic() + 30
    while not settled():
        assert time.monotonic() < deadline, [str(d) for d in ShopEventDelivery.objects.all()]
        time.sleep(0.2)
    assert [r.headers["webhook-id"] for r in default_server.received] == [str(event_a.pk)]
    assert [r.headers["webhook-id"] for r in b_server.received] == [str(event_b.pk)]
    assert verifies(default_server.received[0], default_secret)
    assert verifies(b_server.received[0], b_secret)
    # The failing endpoint's delivery waits for its backoff; the others did not wait for it.
    failed = event_b.deliveries.get(endpoint=failing_endpoint)
    assert failed.state == ShopEventDelivery.State.FAILING and failed.last_error == "HTTP 500"


# --- SHOP_WEBHOOK_URL / SHOP_WEBHOOK_SECRET: the default shop's first endpoint -----------


@pytest.mark.django_db(transaction=True)
def test_the_settings_are_the_default_shops_endpoint_in_step_after_migrate(
    settings: Any, receiver: Callable[..., ScriptedReceiver]
) -> None:
    server = receiver(OK)
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = server.url, ENV_SECRET_1

    call_command("migrate", verbosity=0)  # every deploy does; post_migrate syncs

    endpoint = WebhookEndpoint.objects.get(from_settings=True)
    assert endpoint.shop_id == shop_default().pk and endpoint.enabled
    assert endpoint.url == server.url and endpoint.event_types == []
    assert unseal(endpoint.secret_sealed) == ENV_SECRET_1
    assert webhook_endpoint_sync_settings() == endpoint  # idempotent: still one
    assert WebhookEndpoint.objects.count() == 1


@pytest.mark.django_db
def test_a_changed_settings_secret_is_a_rotation_and_an_emptied_url_turns_it_off_at_migrate(
    settings: Any, make_order: Callable[..., Order], receiver: Callable[..., ScriptedReceiver]
) -> None:
    server = receiver(OK)
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = server.url, ENV_SECRET_1
    paid(make_order())  # the first event syncs the endpoint in this process
    deliver_due()
    settings.SHOP_WEBHOOK_SECRET = ENV_SECRET_2  # a new deploy with a new secret

    paid(make_order())
    deliver_due()

    first, second = server.received
    assert signatures_in(first) == 1 and verifies(first, ENV_SECRET_1)
    assert verifies(second, ENV_SECRET_2) and verifies(second, ENV_SECRET_1)
    endpoint = WebhookEndpoint.objects.get(from_settings=True)
    assert endpoint.previous_secret_expires_at is not None
    assert endpoint.previous_secret_expires_at > timezone.now() + timedelta(hours=23)
    # The rotation is the settings' to make, so is on/off.
    with pytest.raises(ValueError, match="SHOP_WEBHOOK_SECRET"):
        webhook_endpoint_rotate(endpoint=endpoint)
    with pytest.raises(ValueError, match="SHOP_WEBHOOK_URL"):
        webhook_endpoint_set_enabled(endpoint=endpoint, enabled=False)

    # Emptied: a process started without the settings leaves it on (a worker missing them
    # must not switch off what the web uses); the next `migrate` switches it off.
    settings.SHOP_WEBHOOK_URL = ""
    paid(make_order())
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).enabled
    webhook_endpoint_sync_settings()  # what post_migrate runs
    order = make_order()
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")

    assert not ShopEvent.objects.filter(order=order).exists()
    assert not WebhookEndpoint.objects.get(pk=endpoint.pk).enabled


# --- Migration 0007: existing events keep being delivered --------------------------------

BEFORE, AFTER = ("payments", "0007_dashboard_per_shop"), ("payments", "0008_webhook_endpoints")


def migrate_to(target: tuple[str, str]) -> Any:
    """Migrate the test database to `target`; the historical models there."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return MigrationExecutor(connection).loader.project_state([target]).apps


def migrate_to_latest() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def old_events(apps: Any) -> tuple[Any, Any]:
    """Before 0007: a delivered event with its attempt and a pending one that failed once."""
    Order, ShopEvent = apps.get_model("payments", "Order"), apps.get_model("payments", "ShopEvent")
    now = timezone.now()
    order = Order.objects.create(
        reference="before-0007", amount_int=1000, currency="BTC", transaction=uuid.uuid4()
    )

    def event(**state: Any) -> Any:
        body = json.dumps({"id": "x", "type": "order.paid"})
        return ShopEvent.objects.create(
            order=order, type="order.paid", payload={}, body=body, gives_up_at=now, **state
        )

    done = event(attempts=1, delivered_at=now)
    apps.get_model("payments", "ShopEventAttempt").objects.create(event=done, ok=True)
    waiting = event(attempts=1, next_attempt_at=now, last_error="HTTP 500")
    ShopEvent.objects.filter(pk=waiting.pk).update(gives_up_at=now + timedelta(hours=20))
    return done, waiting


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_each_event_a_delivery_to_the_settings_endpoint_and_back(
    settings: Any, receiver: Callable[..., ScriptedReceiver]
) -> None:
    server = receiver(OK)
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = server.url, ENV_SECRET_BEFORE_0007
    try:
        done, waiting = old_events(migrate_to(BEFORE))

        new = migrate_to(AFTER)

        Delivery = new.get_model("payments", "ShopEventDelivery")
        endpoint = new.get_model("payments", "WebhookEndpoint").objects.get()
        assert (endpoint.from_settings, endpoint.enabled, endpoint.url) == (True, True, server.url)
        assert unseal(endpoint.secret_sealed) == ENV_SECRET_BEFORE_0007
        kept = Delivery.objects.get(pk=waiting.pk)  # the event's id: a queued task finds it
        assert (kept.event_id, kept.endpoint_id, kept.attempts) == (waiting.pk, endpoint.pk, 1)
        assert kept.delivered_at is None and kept.last_error == "HTTP 500"
        assert Delivery.objects.get(pk=done.pk).delivered_at == done.delivered_at
        attempt = new.get_model("payments", "ShopEventAttempt").objects.get()
        assert attempt.delivery_id == done.pk
        event = new.get_model("payments", "ShopEvent").objects.get(pk=waiting.pk)
        assert event.shop_id == new.get_model("payments", "Shop").objects.get(is_default=True).pk

        # Back: each event has its state again.
        old = migrate_to(BEFORE)
        ShopEvent = old.get_model("payments", "ShopEvent")
        restored = ShopEvent.objects.get(pk=waiting.pk)
        assert (restored.attempts, restored.last_error, restored.delivered_at) == (
            1,
            "HTTP 500",
            None,
        )
        assert ShopEvent.objects.get(pk=done.pk).delivered_at == done.delivered_at
        assert old.get_model("payments", "ShopEventAttempt").objects.get().event_id == done.pk
    finally:
        migrate_to_latest()

    # Upgraded again, the task queued before the upgrade (the event's id) delivers it.
    assert service.shop_event_deliver(delivery_id=waiting.pk).result == "delivered"
    assert [r.headers["webhook-id"] for r in server.received] == [str(waiting.pk)]
    assert verifies(server.received[0], ENV_SECRET_BEFORE_0007)


@pytest.mark.django_db(transaction=True)
def test_events_migrated_without_a_url_wait_until_shop_webhook_url_is_set(
    settings: Any, receiver: Callable[..., ScriptedReceiver]
) -> None:
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = "", ""
    try:
        _, waiting = old_events(migrate_to(BEFORE))
    finally:
        migrate_to_latest()

    endpoint = WebhookEndpoint.objects.get(from_settings=True)
    assert not endpoint.enabled and endpoint.url == ""
    assert service.shop_event_deliver(delivery_id=waiting.pk).result == "skipped"

    server = receiver(OK)
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = server.url, ENV_SECRET_LATER
    webhook_endpoint_sync_settings()  # what the next start (migrate, first event) does
    assert service.shop_event_deliver(delivery_id=waiting.pk).result == "delivered"
    assert verifies(server.received[0], ENV_SECRET_LATER)
