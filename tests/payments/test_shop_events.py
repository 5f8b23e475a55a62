"""Shop events: an outbox event with every order change, signed POSTs, backoff, give-up.

The shop is a real HTTP server in a thread on 127.0.0.1, configured as
SHOP_WEBHOOK_URL: the default shop's endpoint from the settings (several
endpoints per shop: test_webhook_endpoints.py). Most tests call the delivery
service (one attempt per call) and move the delivery's `next_attempt_at` to
now to stand for the time that passes between attempts; the broker-down test
runs the service in a subprocess with an unreachable broker, and the last
test runs a real worker process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from random import Random
from typing import Any

import pytest
from django.core import checks
from django.db import transaction
from django.utils import timezone

from payments import tasks
from payments.api.serializers import order_representation
from payments.checks import check_shop_events
from payments.models import (
    Order,
    OrderFlag,
    ShopEvent,
    ShopEventAttempt,
    ShopEventDelivery,
    WebhookEndpoint,
    shops,
)
from payments.services import order_flag, order_transition
from payments.services import shop_events as service
from payments.services.webhook_endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_settings_in_step,
)
from payments.shop_event_signing import signature_headers
from payments.states import OrderStatus
from tests.conftest import service_env
from tests.http_receiver import Received, ScriptedReceiver, scripted
from tests.standard_webhooks import shop_webhook, verified, verifies

SECRET = "whsec_c2hvcC1ldmVudHMtdGVzdC1rZXktMzItYnl0ZXMtb2s="  # 32 bytes, standard base64
ANOTHER_SECRET = "whsec_YW5vdGhlci1zZWNyZXQtb2YtdGhpcnR5LXR3by1ieXQ="
OK = (204, b"")
SHOP_PATH = "/shop/events?token=s3cr3t-in-url"  # a token in the URL must never be logged
Shop = ScriptedReceiver


# --- The shop: a real HTTP server in a thread -------------------------------------


@pytest.fixture
def shop(settings: Any) -> Iterator[Callable[..., Shop]]:
    """`shop(OK)` or `shop((500, b"no"), OK)`: a receiver, configured as SHOP_WEBHOOK_URL."""
    started: list[Shop] = []

    def start(*replies: tuple[int, bytes] | tuple[int, bytes, float]) -> Shop:
        receiver = Shop(scripted(replies), path=SHOP_PATH).start()
        started.append(receiver)
        settings.SHOP_WEBHOOK_URL = receiver.url
        settings.SHOP_WEBHOOK_SECRET = SECRET
        settings.SHOP_WEBHOOK_TIMEOUT = 1.0
        settings.SHOP_WEBHOOK_RETRY_HOURS = 24
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/shop/events?token=s3cr3t-in-url"


def paid(order: Order) -> ShopEvent:
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
    return ShopEvent.objects.get(order=order, type="order.paid")


def delivery_of(event: ShopEvent) -> ShopEventDelivery:
    """The event's one delivery: to the settings' endpoint."""
    return ShopEventDelivery.objects.get(event=event)


def deliver(event: ShopEvent) -> service.DeliveryOutcome:
    """One attempt of the event's delivery."""
    return service.shop_event_deliver(delivery_id=delivery_of(event).pk)


def make_due(event: ShopEvent) -> None:
    """Stand for the time that passes until the scheduled attempt."""
    ShopEventDelivery.objects.filter(event=event).update(next_attempt_at=timezone.now())


def assert_signed(received: Received, event: ShopEvent) -> None:
    assert received.body == event.body.encode()
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["User-Agent"]
    assert received.headers["webhook-id"] == str(event.pk) == event.payload["id"]
    assert verified(received, SECRET) == event.payload
    assert not verifies(received, ANOTHER_SECRET)


# --- Recording: the outbox ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_transition_records_its_event_in_the_same_transaction(
    make_order: Callable[..., Order],
    shop: Callable[..., Shop],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    shop(OK)
    order = make_order(amount_int=1_250_000, currency="USD", data="cart-7")

    with django_capture_on_commit_callbacks() as callbacks:
        event = paid(order)

    assert json.loads(event.body) == event.payload
    order.refresh_from_db()
    assert event.payload == {
        "id": str(event.pk),
        "type": "order.paid",
        "version": 2,
        "timestamp": event.created.isoformat().replace("+00:00", "Z"),
        "data": {"order": order_representation(order)},
    }
    assert event.payload["data"]["order"]["status"] == "paid"
    assert event.payload["data"]["order"]["amount"] == "12.50000"
    assert event.shop_id == order.shop_id
    # One delivery, to the default shop's endpoint from SHOP_WEBHOOK_URL.
    delivery = delivery_of(event)
    assert delivery.endpoint.from_settings and delivery.endpoint.url == settings.SHOP_WEBHOOK_URL
    assert delivery.attempts == 0 and delivery.delivered_at is None
    assert delivery.next_attempt_at == event.created
    assert delivery.gives_up_at == event.created + timedelta(hours=24)
    # The delivery is enqueued after the commit, not before.
    assert any(getattr(c, "func", None) is service._enqueue_many for c in callbacks)


@pytest.mark.django_db
def test_a_rolled_back_transition_leaves_no_event_and_enqueues_nothing(
    make_order: Callable[..., Order],
    shop: Callable[..., Shop],
    django_capture_on_commit_callbacks: Any,
) -> None:
    shop(OK)
    order = make_order()

    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
        assert ShopEvent.objects.filter(order=order).count() == 1
        raise RuntimeError("the change fails after the event was written")

    assert not ShopEvent.objects.exists() and not ShopEventDelivery.objects.exists()
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert callbacks == []
    # The settings' endpoint made in that transaction went with it, and is made again.
    assert not WebhookEndpoint.objects.exists()
    assert paid(order).deliveries.get().endpoint.from_settings


@pytest.mark.django_db
def test_no_event_when_no_url_is_configured(
    make_order: Callable[..., Order], settings: Any
) -> None:
    settings.SHOP_WEBHOOK_URL = ""
    order = make_order()

    order_transition(order_id=order.pk, to=OrderStatus.CONFIRMING, reason="test")
    order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="x")

    assert not ShopEvent.objects.exists()
    assert not WebhookEndpoint.objects.filter(enabled=True).exists()


@pytest.mark.django_db
def test_every_state_change_and_a_flag_are_events(
    make_order: Callable[..., Order], shop: Callable[..., Shop]
) -> None:
    shop(OK)
    created = make_order(status=OrderStatus.CREATED)
    order = make_order()

    order_transition(order_id=created.pk, to=OrderStatus.FAILED, reason="test")
    order_transition(order_id=order.pk, to=OrderStatus.CONFIRMING, reason="test")
    order_transition(order_id=order.pk, to=OrderStatus.CANCELLED, reason="test")
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="late money")
    order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="paid after being cancelled")

    assert list(ShopEvent.objects.filter(order=created).values_list("type", flat=True)) == [
        "order.failed"
    ]
    events = list(ShopEvent.objects.filter(order=order).order_by("created"))
    assert [e.type for e in events] == [
        "order.confirming", "order.cancelled", "order.paid", "order.flagged",
    ]  # fmt: skip
    assert [e.payload["data"]["order"]["status"] for e in events] == [
        "confirming", "cancelled", "paid", "paid",
    ]  # fmt: skip
    flag = {"kind": "late", "detail": "paid after being cancelled"}
    assert events[-1].payload["data"]["flag"] == flag
    assert len({e.pk for e in events}) == 4


@pytest.mark.django_db
def test_the_bulk_recorder_makes_one_event_per_order(
    make_order: Callable[..., Order],
    shop: Callable[..., Shop],
    enqueued: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    shop(OK)
    orders = [make_order(status=OrderStatus.EXPIRED) for _ in range(3)]

    with django_capture_on_commit_callbacks(execute=True):
        ids = service.shop_events_record_many(
            order_ids=[o.pk for o in orders], event_type="order.expired"
        )

    assert len(ids) == 3
    events = ShopEvent.objects.filter(pk__in=ids)
    assert {e.order_id for e in events} == {o.pk for o in orders}
    assert all(e.payload["data"]["order"]["status"] == "expired" for e in events)
    deliveries = ShopEventDelivery.objects.filter(event__in=ids)
    assert sorted(enqueued) == sorted(str(d.pk) for d in deliveries) and len(enqueued) == 3


# --- Delivery -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_delivered_to_a_real_shop_signed_and_never_sent_again(
    make_order: Callable[..., Order], shop: Callable[..., Shop]
) -> None:
    receiver = shop(OK)
    event = paid(make_order())

    outcome = deliver(event)

    assert outcome == service.DeliveryOutcome("delivered")
    assert len(receiver.received) == 1
    assert receiver.received[0].path == "/shop/events?token=s3cr3t-in-url"
    assert_signed(receiver.received[0], event)
    delivery = delivery_of(event)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert delivery.attempts == 1 and delivery.state == ShopEventDelivery.State.DELIVERED
    (attempt,) = ShopEventAttempt.objects.filter(delivery=delivery)
    assert (attempt.ok, attempt.http_status, attempt.error) == (True, 204, "")
    assert attempt.duration_ms >= 0

    make_due(event)  # even made due again, a delivered event is not sent
    assert deliver(event).result == "skipped"
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_failures_are_recorded_backed_off_exponentially_then_delivered_once(
    make_order: Callable[..., Order],
    shop: Callable[..., Shop],
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    receiver = shop((500, b"boom: database down"), (200, b"late", 3.0), OK)
    event = paid(make_order())

    endpoint = WebhookEndpoint.objects.filter(pk=delivery_of(event).endpoint_id)

    first = deliver(event)  # HTTP 500
    make_due(event)
    second = deliver(event)  # no answer within 1 s
    endpoint.update(url=closed_port_url())
    make_due(event)
    third = deliver(event)  # connection refused
    endpoint.update(url=receiver.url)
    not_due = deliver(event)  # the backoff is not over
    make_due(event)
    fourth = deliver(event)  # the shop recovered

    assert [first.result, second.result, third.result] == ["failed"] * 3
    assert not_due.result == "skipped"
    assert fourth.result == "delivered" and fourth.retry_in is None
    # 30 s, 60 s, 120 s, each within the +-20% jitter.
    for outcome, base in ((first, 30), (second, 60), (third, 120)):
        assert outcome.retry_in is not None
        assert base * 0.8 - 1 <= outcome.retry_in <= base * 1.2 + 1, (base, outcome)
    attempts = list(ShopEventAttempt.objects.filter(delivery__event=event).order_by("id"))
    assert [a.ok for a in attempts] == [False, False, False, True]
    assert attempts[0].http_status == 500 and attempts[0].reply == "boom: database down"
    assert attempts[1].http_status is None and "ReadTimeout" in attempts[1].error
    assert attempts[2].http_status is None and "ConnectionError" in attempts[2].error
    assert "refused" in attempts[2].error.lower()
    assert all(len(a.reply) <= 200 for a in attempts)
    assert len(receiver.received) == 3  # 500, timeout, ok: the refused one never arrived
    for received in receiver.received:
        assert_signed(received, event)
    delivery = delivery_of(event)
    assert delivery.attempts == 4 and delivery.delivered_at is not None
    assert delivery.last_error == ""

    make_due(event)
    assert deliver(event).result == "skipped"
    assert len(receiver.received) == 3
    # No secret, signature or URL token in the attempts or the log.
    signatures = [r.headers["webhook-signature"] for r in receiver.received]
    texts = [a.error for a in attempts] + [caplog.text]
    for text in texts:
        assert SECRET not in text and "s3cr3t-in-url" not in text
        assert not any(sig.split(",")[1] in text for sig in signatures)


@pytest.mark.django_db(transaction=True)
def test_concurrent_tasks_for_one_event_send_it_once(
    make_order: Callable[..., Order], shop: Callable[..., Shop]
) -> None:
    from django.db import connection

    receiver = shop((200, b"slow", 0.5))
    delivery = delivery_of(paid(make_order()))
    results: list[str] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        try:
            barrier.wait()
            results.append(service.shop_event_deliver(delivery_id=delivery.pk).result)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(results) == ["delivered", "skipped", "skipped", "skipped"]
    assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.attempt_log.count() == 1


def test_backoff_doubles_from_30_seconds_up_to_an_hour_within_the_jitter() -> None:
    rng = Random(7)
    for attempt in range(1, 16):
        base = min(30 * 2 ** (attempt - 1), 3600)
        samples = [service.backoff_seconds(attempt=attempt, rng=rng) for _ in range(200)]
        assert base * 0.8 <= min(samples) and max(samples) <= base * 1.2
        assert max(samples) - min(samples) > base * 0.2  # really jittered


@pytest.mark.django_db
def test_the_last_retry_is_at_the_end_of_the_window_and_then_it_gives_up(
    make_order: Callable[..., Order], shop: Callable[..., Shop], settings: Any
) -> None:
    receiver = shop((503, b"maintenance"))
    settings.SHOP_WEBHOOK_RETRY_HOURS = 10 / 3600  # a 10 s window
    event = paid(make_order())

    first = deliver(event)

    assert first.result == "failed"
    assert first.retry_in is not None and first.retry_in <= 10  # not 30 s: capped at the window
    delivery = delivery_of(event)
    assert delivery.next_attempt_at == delivery.gives_up_at

    # The window is over by the time of the next attempt.
    ShopEventDelivery.objects.filter(pk=delivery.pk).update(
        gives_up_at=timezone.now() - timedelta(seconds=1), next_attempt_at=timezone.now()
    )
    last = deliver(event)

    assert last == service.DeliveryOutcome("given_up")
    delivery.refresh_from_db()
    assert delivery.state == ShopEventDelivery.State.GIVEN_UP
    assert delivery.given_up_at is not None and delivery.next_attempt_at is None
    assert delivery.last_error == "HTTP 503"
    assert delivery.attempts == 2 and len(receiver.received) == 2
    # Kept, and left alone by the sweep and by tasks.
    assert service.shop_events_redeliver_due(grace_seconds=0) == []
    assert deliver(event).result == "skipped"
    assert len(receiver.received) == 2


@pytest.mark.django_db
def test_a_zero_window_gives_up_after_the_first_failed_attempt(
    make_order: Callable[..., Order], shop: Callable[..., Shop], settings: Any
) -> None:
    shop((500, b""))
    settings.SHOP_WEBHOOK_RETRY_HOURS = 0
    event = paid(make_order())

    assert deliver(event).result == "given_up"


@pytest.mark.django_db
def test_an_event_is_not_sent_without_a_secret(
    make_order: Callable[..., Order], shop: Callable[..., Shop], settings: Any
) -> None:
    receiver = shop(OK)
    settings.SHOP_WEBHOOK_SECRET = ""  # refused at start by payments.E004; here, not sent
    event = paid(make_order())

    outcome = deliver(event)

    assert outcome.result == "failed" and receiver.received == []
    error = ShopEventAttempt.objects.get(delivery__event=event).error
    assert "no secret" in error and "SHOP_WEBHOOK_SECRET" in error


@pytest.mark.django_db
def test_an_event_is_not_sent_when_its_secret_cannot_be_opened(
    make_order: Callable[..., Order], shop: Callable[..., Shop], settings: Any
) -> None:
    receiver = shop(OK)
    event = paid(make_order())
    settings.SECRET_KEY = "another key, without the former one as a fallback"

    outcome = deliver(event)

    assert outcome.result == "failed" and receiver.received == []
    error = ShopEventAttempt.objects.get(delivery__event=event).error
    assert "cannot be opened" in error and "DJANGO_SECRET_KEY" in error


# --- The signature, as a shop checks it ----------------------------------------------------


def test_the_signature_is_the_specs_hmac_and_the_library_checks_it() -> None:
    body = '{"id":"e1","type":"order.paid"}'
    now = int(time.time())

    headers = signature_headers(event_id="e1", body=body, secrets=[SECRET], timestamp=now)

    assert headers["webhook-id"] == "e1" and headers["webhook-timestamp"] == str(now)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"e1.{now}.{body}".encode(), hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
    assert shop_webhook(SECRET).verify(body, headers) == json.loads(body)
    # Several secrets (a rotation): one v1 each, in order, under the one timestamp.
    both = signature_headers(
        event_id="e1", body=body, secrets=[SECRET, ANOTHER_SECRET], timestamp=now
    )
    assert both["webhook-signature"].split(" ")[0] == headers["webhook-signature"]
    assert shop_webhook(ANOTHER_SECRET).verify(body, both) == json.loads(body)
    with pytest.raises(ValueError):
        signature_headers(event_id="e1", body=body, secrets=[""], timestamp=now)
    with pytest.raises(ValueError):
        signature_headers(event_id="e1", body=body, secrets=[], timestamp=now)


# --- The sweep, the tasks, the check --------------------------------------------------------


@pytest.mark.django_db
def test_the_sweep_takes_overdue_events_in_chunks_once(
    make_order: Callable[..., Order],
    shop: Callable[..., Shop],
    enqueued: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    shop(OK)
    events = [paid(make_order()) for _ in range(3)]
    fresh = paid(make_order())
    enqueued.clear()  # the events' own first enqueue is not what this test is about
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    ShopEventDelivery.objects.filter(event__in=[e.pk for e in events]).update(
        created=two_minutes_ago, next_attempt_at=two_minutes_ago
    )
    deliveries = {delivery_of(e).pk for e in events}

    with django_capture_on_commit_callbacks(execute=True):
        first = service.shop_events_redeliver_due(limit=2)
    with django_capture_on_commit_callbacks(execute=True):
        second = service.shop_events_redeliver_due(limit=2)
    with django_capture_on_commit_callbacks(execute=True):
        third = service.shop_events_redeliver_due(limit=2)

    assert len(first) == 2 and len(second) == 1 and third == []
    assert set(first + second) == deliveries  # not the fresh one: not overdue
    assert enqueued == [str(pk) for pk in first + second]
    assert delivery_of(fresh).next_attempt_at == fresh.created


@pytest.mark.django_db
def test_the_task_delivers_and_a_vanished_event_is_skipped(
    make_order: Callable[..., Order], shop: Callable[..., Shop]
) -> None:
    receiver = shop(OK)
    delivery = delivery_of(paid(make_order()))

    assert tasks.deliver_shop_event.apply(args=[str(delivery.pk)]).result == "delivered"
    assert tasks.deliver_shop_event.apply(args=[str(delivery.pk)]).result == "skipped"
    assert len(receiver.received) == 1
    missing = "00000000-0000-4000-8000-000000000000"
    assert tasks.deliver_shop_event.apply(args=[missing]).result == "skipped"


def test_a_shop_event_url_without_a_secret_is_an_error_in_any_mode(settings: Any) -> None:
    for debug in (True, False):
        settings.DEBUG = debug
        settings.SHOP_WEBHOOK_URL = "https://shop.example/events"
        settings.SHOP_WEBHOOK_SECRET = ""
        found = check_shop_events()
        assert [m.id for m in found] == ["payments.E004"]
        assert all(m.level == checks.ERROR for m in found)
    settings.SHOP_WEBHOOK_SECRET = SECRET
    assert check_shop_events() == []
    settings.SHOP_WEBHOOK_URL = "ftp://shop.example/events"
    assert [m.id for m in check_shop_events()] == ["payments.E005"]
    settings.SHOP_WEBHOOK_URL = ""
    settings.SHOP_WEBHOOK_SECRET = ""
    assert check_shop_events() == []
    settings.SHOP_WEBHOOK_ROTATION_HOURS = -1
    assert [m.id for m in check_shop_events()] == ["payments.E009"]


@pytest.mark.django_db
def test_staff_see_events_with_their_attempts_and_can_send_one_again(
    client: Any,
    make_order: Callable[..., Order],
    shop: Callable[..., Shop],
    settings: Any,
    enqueued: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.contrib.auth import get_user_model

    receiver = shop((500, b"shop says no"))
    settings.SHOP_WEBHOOK_RETRY_HOURS = 0
    event = paid(make_order(reference="admin-shown"))
    delivery = delivery_of(event)
    assert deliver(event).result == "given_up"
    client.force_login(get_user_model().objects.create_superuser("boss", password="x-long-pw-1"))

    events = client.get("/admin/payments/shopevent/")
    page = client.get(f"/admin/payments/shopevent/{event.pk}/change/")
    listing = client.get("/admin/payments/shopeventdelivery/?state=given_up")
    delivery_page = client.get(f"/admin/payments/shopeventdelivery/{delivery.pk}/change/")

    assert events.status_code == 200 and "order.paid" in events.content.decode()
    assert page.status_code == 200
    html = page.content.decode()
    assert "HTTP 500" in html and "given up" in html and "admin-shown" in html
    assert listing.status_code == 200 and "order.paid" in listing.content.decode()
    assert "shop says no" in delivery_page.content.decode()  # its attempts
    assert client.get("/admin/payments/shopevent/add/").status_code == 403
    assert client.get("/admin/payments/shopeventdelivery/add/").status_code == 403

    settings.SHOP_WEBHOOK_RETRY_HOURS = 24
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/payments/shopevent/",
            {"action": "deliver_again", "_selected_action": [str(event.pk)]},
        )
    assert enqueued == [str(delivery.pk)]
    delivery.refresh_from_db()
    # Retried again; its last attempt (before it was given up) failed.
    assert delivery.state == ShopEventDelivery.State.FAILING
    assert delivery.gives_up_at > timezone.now()
    receiver.replies[:] = [(200, b"", 0.0)]
    assert deliver(event).result == "delivered"


# --- With the broker down; with a real worker ------------------------------------------------

BROKER_DOWN_PROBE = """
import json, sys, time
import django
django.setup()
from django.test import Client
from payments.models import Order
from payments.testing import ipn_body, post_ipn

order = Order.objects.get(pk=sys.argv[1])
body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
started = time.monotonic()
response = post_ipn(Client(SERVER_NAME="localhost"), body)
print(json.dumps({"status": response.status_code, "content": response.content.decode(),
                  "seconds": time.monotonic() - started}))
"""


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_ipn_is_applied_and_the_sweep_delivers_later(
    make_order: Callable[..., Order], shop: Callable[..., Shop], enqueued: list[str]
) -> None:
    receiver = shop(OK)
    order = make_order()
    env = service_env(
        CELERY_BROKER_URL="redis://127.0.0.1:9/0",  # nothing listens there
        SHOP_WEBHOOK_URL=receiver.url,
        SHOP_WEBHOOK_SECRET=SECRET,
    )

    result = subprocess.run(
        [sys.executable, "-c", BROKER_DOWN_PROBE, str(order.pk)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert (answer["status"], answer["content"]) == (200, "[OK]"), result.stderr
    assert answer["seconds"] < 10, answer  # the dead broker does not hold up the answer long
    assert "not enqueued" in result.stderr
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    event = ShopEvent.objects.get(order=order, type="order.paid")
    delivery = delivery_of(event)  # to the endpoint the subprocess made from its settings
    assert delivery.endpoint.url == receiver.url
    assert (delivery.attempts, delivery.delivered_at) == (0, None)
    assert receiver.received == []

    # Not yet overdue: a first enqueue may still be on its way.
    assert service.shop_events_redeliver_due() == []
    # A minute later the sweep (with a working broker) enqueues it, and it is delivered.
    a_minute_ago = timezone.now() - timedelta(seconds=61)
    ShopEventDelivery.objects.filter(pk=delivery.pk).update(
        created=a_minute_ago, next_attempt_at=a_minute_ago
    )
    assert tasks.redeliver_shop_events.apply().result == 1
    assert enqueued == [str(delivery.pk)]
    assert tasks.deliver_shop_event.apply(args=enqueued).result == "delivered"
    assert len(receiver.received) == 1
    assert_signed(receiver.received[0], event)


@pytest.mark.worker
def test_a_real_worker_delivers_a_transition_to_the_shop(
    start_worker: Callable[..., Any], shop: Callable[..., Shop], make_order: Callable[..., Order]
) -> None:
    receiver = shop(OK)
    start_worker("webhooks", SHOP_WEBHOOK_URL=receiver.url, SHOP_WEBHOOK_SECRET=SECRET)
    order = make_order()

    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")  # committed

    event = ShopEvent.objects.get(order=order)
    delivery = delivery_of(event)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.delivered_at is not None:
            break
        time.sleep(0.2)
    assert delivery.delivered_at is not None, [str(a) for a in delivery.attempt_log.all()]
    assert delivery.attempts == 1
    assert len(receiver.received) == 1
    assert_signed(receiver.received[0], event)


@pytest.mark.parametrize("seconds_since_read", [0.0, 5.0], ids=["just read", "read long ago"])
def test_a_shop_read_without_endpoints_skips_the_query_only_for_about_a_request(
    make_order: Callable[..., Order],
    monkeypatch: pytest.MonkeyPatch,
    seconds_since_read: float,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A read that saw no endpoint stands for ENDPOINTS_SEEN_SECONDS: an endpoint added during
    a slow gateway call still gets the order's event."""
    with django_capture_on_commit_callbacks(execute=True):  # this process's sync done first
        webhook_endpoint_settings_in_step()
    order = make_order()
    order.shop.endpoints_seen(False)
    webhook_endpoint_create(shop=order.shop, url="http://127.0.0.1:9/events")  # meanwhile
    later = time.monotonic() + seconds_since_read
    monkeypatch.setattr("payments.models.shops.time.monotonic", lambda: later)

    recorded = service.shop_event_record(order=order, event_type="order.paid")

    assert (recorded is not None) == (seconds_since_read > shops.ENDPOINTS_SEEN_SECONDS)


def test_a_read_made_before_the_processs_settings_sync_is_not_trusted(
    make_order: Callable[..., Order], settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Another thread's first event syncs SHOP_WEBHOOK_URL's endpoint while this request's
    shop read (no endpoint yet) is in hand: its order change still records the event."""
    order = make_order()
    order.shop.endpoints_seen(False)  # this request's token lookup: no endpoint yet
    settings.SHOP_WEBHOOK_URL = "http://127.0.0.1:9/events"
    settings.SHOP_WEBHOOK_SECRET = SECRET
    with django_capture_on_commit_callbacks(execute=True):  # the other thread's sync
        webhook_endpoint_settings_in_step()

    recorded = service.shop_event_record(order=order, event_type="order.awaiting_payment")

    assert recorded is not None
    assert [d.endpoint.from_settings for d in recorded.deliveries.all()] == [True]
