"""PAYMENTS_IPN_APPLY=worker: the request stores and answers, a real Celery worker applies.

The live server runs in this process with the test's settings; the worker is a
process of its own on the same database and broker (the filesystem broker on
SQLite, Redis in the PostgreSQL pass). What must hold: `[OK]` only once stored,
every notification applied exactly once (duplicates, concurrent duplicates, a
partial then paid), and the answer never waits on the broker: with the broker
down it is still `[OK]`, and the apply_pending sweep applies it later.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.test import Client

from payments.checks import check_ipn_apply
from payments.models import Notification, Order, Payment, ShopEvent
from payments.services import ipn_inbox
from payments.services.ipn_inbox import notifications_drain
from payments.services.sweeps import notifications_apply_pending
from payments.services.webhook_endpoints import webhook_endpoint_create
from payments.states import OrderStatus
from payments.testing import ipn_body, post_ipn, post_ipn_http
from tests.conftest import service_env
from tests.faults.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

Outcome = Notification.Outcome


@pytest.fixture
def worker_mode(settings: Any) -> None:
    settings.PAYMENTS_IPN_APPLY = "worker"


@pytest.fixture
def service_url(worker_mode: None, live_server: Any, start_worker: Callable[..., Any]) -> str:
    """The live service in worker mode, with a real Celery worker applying its IPNs."""
    start_worker("ipn-inbox")
    return str(live_server.url)


def paid_body(order: Order, payment_id: uuid.UUID | None = None) -> bytes:
    return ipn_body(
        transaction=order.transaction,
        status="paid",
        amount_int=order.amount_int,
        payment_id=payment_id,
    )


def nothing_pending() -> bool:
    return not Notification.objects.filter(outcome=Outcome.PENDING).exists()


def test_another_value_of_the_setting_is_a_check_error(settings: Any) -> None:
    assert check_ipn_apply() == []  # the default: request
    settings.PAYMENTS_IPN_APPLY = "worker"
    assert check_ipn_apply() == []

    settings.PAYMENTS_IPN_APPLY = "workers"

    [error] = check_ipn_apply()
    assert error.id == "payments.E020"
    assert "'workers'" in error.msg


def test_the_request_stores_and_answers_without_applying(
    worker_mode: None, make_order: Callable[..., Order], caplog: pytest.LogCaptureFixture
) -> None:
    order = make_order()

    with caplog.at_level("INFO", logger="payments.ipn"):
        response = post_ipn(Client(), paid_body(order))

    assert (response.status_code, response.content) == (200, b"[OK]")
    stored = Notification.objects.get()
    assert (stored.outcome, stored.applied_at, stored.times_received) == (Outcome.PENDING, None, 1)
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert not Payment.objects.exists()
    assert [r.outcome for r in caplog.records if hasattr(r, "outcome")] == ["stored"]

    assert notifications_drain(until=0)["examined"] == 1  # what the woken worker runs
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


class _Clock:
    """time.time, time.monotonic and time.sleep of the drain, on a clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_wake_ends_after_its_window_under_a_steady_stream(
    worker_mode: None, make_order: Callable[..., Order], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pass finds a newer notification, yet the drain ends with its first whole pass
    begun after `until` (those later notifications are their own wakes'), not 30 s later."""
    clock = _Clock(1_000.0)
    real_pass = ipn_inbox.notifications_apply_pending
    began: list[float] = []

    def a_notification_then_a_pass(**kwargs: Any) -> Any:
        began.append(clock.now)
        post_ipn(Client(), paid_body(make_order()))  # stored, not applied: worker mode
        clock.now += 0.01  # the pass's own time
        return real_pass(**kwargs)

    monkeypatch.setattr(ipn_inbox, "time", clock)
    monkeypatch.setattr(ipn_inbox, "notifications_wake", lambda: False)
    monkeypatch.setattr(ipn_inbox, "notifications_apply_pending", a_notification_then_a_pass)

    counts = notifications_drain(until=1_000.1)

    assert [t >= 1_000.1 for t in began] == [False] * (len(began) - 1) + [True]
    assert counts["outcome:applied"] == len(began)  # each pass applied its notification
    assert nothing_pending()


def test_the_worker_records_the_event_of_a_shop_with_an_endpoint(
    worker_mode: None, make_order: Callable[..., Order]
) -> None:
    """The drain reads the chunk's shops with their endpoints: a shop with one gets its event."""
    order = make_order()
    endpoint, _secret = webhook_endpoint_create(shop=order.shop, url="http://127.0.0.1:9/events")
    assert post_ipn(Client(), paid_body(order)).content == b"[OK]"

    assert notifications_drain(until=0)["examined"] == 1

    event = ShopEvent.objects.get(order=order, type="order.paid")
    assert [d.endpoint_id for d in event.deliveries.all()] == [endpoint.pk]


def test_a_duplicate_in_worker_mode_is_counted_not_applied(
    worker_mode: None, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    body = paid_body(order)
    assert post_ipn(Client(), body).content == b"[OK]"
    notifications_drain(until=0)

    again = post_ipn(Client(), body)

    assert again.content == b"[OK]"
    stored = Notification.objects.get()
    assert (stored.outcome, stored.times_received) == (Outcome.APPLIED, 2)
    assert Payment.objects.filter(order=order).count() == 1
    assert order.transitions.count() == 1


@pytest.mark.worker
def test_a_real_worker_applies_every_ipn_exactly_once(
    service_url: str, make_order: Callable[..., Order]
) -> None:
    orders = [make_order(reference=f"inbox-{i}") for i in range(24)]
    twice = orders[:6]  # each sent three times in the same concurrent batch (early retries)
    bodies = [paid_body(o) for o in orders]
    copies = bodies + [b for b in bodies[: len(twice)] for _ in range(2)]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: post_ipn_http(service_url, b, timeout=30), copies))

    assert [(a.status_code, a.content) for a in answers] == [(200, b"[OK]")] * len(copies)
    wait_until(nothing_pending, 30, "the worker to apply every notification")
    assert Notification.objects.count() == len(orders)
    assert set(Notification.objects.values_list("outcome", flat=True)) == {Outcome.APPLIED}
    assert sorted(Notification.objects.values_list("times_received", flat=True)) == sorted(
        [3] * len(twice) + [1] * (len(orders) - len(twice))
    )
    assert Payment.objects.count() == len(orders)
    for order in orders:
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID
        assert order.transitions.count() == 1


@pytest.mark.worker
def test_a_real_worker_applies_a_partial_then_the_paid(
    service_url: str, make_order: Callable[..., Order]
) -> None:
    order = make_order(reference="partial-then-paid")
    payment_id = uuid.uuid4()
    partial = ipn_body(
        transaction=order.transaction,
        status="partial",
        payment_id=payment_id,
        amount_pending=order.amount_int,
    )

    assert post_ipn_http(service_url, partial).content == b"[OK]"
    wait_until(nothing_pending, 30, "the partial to be applied")
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMING
    assert post_ipn_http(service_url, paid_body(order, payment_id)).content == b"[OK]"
    wait_until(nothing_pending, 30, "the paid to be applied")

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert Payment.objects.filter(order=order).count() == 1
    assert list(Notification.objects.values_list("outcome", flat=True)) == [Outcome.APPLIED] * 2


BROKER_DOWN_PROBE = """
import json, sys, time
import django
django.setup()
from django.test import Client
from payments.models import Order
from payments.testing import ipn_body, post_ipn

client = Client(SERVER_NAME="localhost")
answers = []
for pk in sys.argv[1:]:  # the second finds the publish paused: no wait at all
    order = Order.objects.get(pk=pk)
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    started = time.monotonic()
    response = post_ipn(client, body)
    answers.append({"status": response.status_code, "content": response.content.decode(),
                    "seconds": time.monotonic() - started})
print(json.dumps(answers))
"""


def test_with_the_broker_down_the_ipn_is_stored_and_the_sweep_applies_it(
    make_order: Callable[..., Order],
) -> None:
    orders = [make_order(reference=f"broker-down-{i}") for i in range(2)]
    env = service_env(
        CELERY_BROKER_URL="redis://127.0.0.1:9/0",  # nothing listens there
        PAYMENTS_IPN_APPLY="worker",
    )

    result = subprocess.run(
        [sys.executable, "-c", BROKER_DOWN_PROBE, *(str(o.pk) for o in orders)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert [(a["status"], a["content"]) for a in answers] == [(200, "[OK]")] * 2, result.stderr
    assert answers[0]["seconds"] < 10, answers  # two quick tries to publish
    assert answers[1]["seconds"] < 1, answers  # then no request waits on it for a while
    assert result.stderr.count("IPN worker not woken") == 1
    assert list(Notification.objects.values_list("outcome", flat=True)) == [Outcome.PENDING] * 2

    counts = notifications_apply_pending(older_than_seconds=0)  # the sweep beat runs

    assert counts["outcome:applied"] == 2, counts
    for order in orders:
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID
