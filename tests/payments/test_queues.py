"""Queues by purpose, retries never held long by the broker, and task time limits.

Routing is read from the Celery app itself (its router and its queues); the
worker tests start real worker processes: one started without `-Q` consumes
every queue, and an attempt that hangs past its time limit is stopped and its
event delivered again by the sweep.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from merchant import queues
from merchant.celery import app
from payments import tasks
from payments.models import Order, ShopEventDelivery
from payments.services import order_transition
from payments.services import shop_events as service
from payments.states import OrderStatus
from tests.conftest import BASE_DIR
from tests.http_receiver import ScriptedReceiver, scripted

SECRET = "whsec-queues-test-5e4d3c2b1a0f9e8d7c6b"


def queue_of(name: str, *args: Any, **kwargs: Any) -> str:
    return str(app.amqp.router.route({}, name, args, kwargs)["queue"].name)


# --- Routing ----------------------------------------------------------------------------


def test_each_task_goes_to_the_queue_of_its_purpose() -> None:
    assert queue_of("payments.tasks.run_sweep", "apply_pending") == queues.NOTIFICATIONS
    assert queue_of("payments.tasks.run_sweep", sweep="apply_pending") == queues.NOTIFICATIONS
    assert queue_of("payments.tasks.run_sweep", "ledger") == queues.SWEEPS
    assert queue_of("payments.tasks.deliver_shop_event", "some-id") == queues.EVENTS
    assert queue_of("payments.tasks.redeliver_shop_events") == queues.SWEEPS
    assert queue_of("sandbox.tasks.deliver_ipn", 1) == queues.SANDBOX
    assert queue_of("sandbox.tasks.redeliver_due_ipns") == queues.SANDBOX
    assert queue_of("payments.tasks.refresh_dashboard_summary") == queues.DEFAULT


def test_every_task_and_beat_entry_lands_in_a_queue_workers_consume() -> None:
    assert set(app.amqp.queues) == set(queues.ALL)
    names = [name for name in app.tasks if not name.startswith("celery.")]
    assert names
    for name in names:
        assert queue_of(name, "expire") in queues.ALL, name
    for entry in django_settings.CELERY_BEAT_SCHEDULE.values():
        args = entry.get("args", ())
        assert isinstance(args, tuple | list)
        assert queue_of(str(entry["task"]), *args) in queues.ALL, entry


def test_the_procfile_worker_consumes_every_queue() -> None:
    worker = next(
        line
        for line in (BASE_DIR / "Procfile").read_text().splitlines()
        if line.startswith("worker:")
    )
    listed = re.search(r"(?:-Q|--queues)[ =](\S+)", worker)
    assert listed is not None, worker
    assert set(listed.group(1).split(",")) == set(queues.ALL)


@pytest.mark.worker
def test_a_worker_started_without_queues_consumes_all_of_them(
    start_worker: Callable[..., Any],
) -> None:
    worker = start_worker("all-queues", concurrency=1)
    replies = app.control.inspect(
        destination=[f"all-queues@{socket.gethostname()}"]
    ).active_queues()
    assert replies, Path(worker.log_path).read_text()[-2000:]
    consumed = {queue["name"] for reply in replies.values() for queue in reply}
    assert consumed == set(queues.ALL)


# --- Long retries: in the database, not in the broker ----------------------------------


@pytest.fixture
def failing_shop(settings: Any) -> Iterator[ScriptedReceiver]:
    shop = ScriptedReceiver(scripted(((500, b"no"), (204, b"")))).start()
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = shop.url, SECRET
    settings.SHOP_WEBHOOK_TIMEOUT = 1.0
    yield shop
    shop.stop()


class Retried(Exception):
    """What the task's `self.retry(...)` raises here instead of publishing."""


def _retry_recorder(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    retries: list[dict[str, Any]] = []

    def fake_retry(**kwargs: Any) -> Retried:
        retries.append(kwargs)
        return Retried()

    monkeypatch.setattr(tasks.deliver_shop_event, "retry", fake_retry)
    return retries


def _recorded_delivery(order: Order, monkeypatch: pytest.MonkeyPatch) -> ShopEventDelivery:
    """The one delivery of the order's event (to the endpoint of SHOP_WEBHOOK_URL)."""
    monkeypatch.setattr(tasks.deliver_shop_event, "apply_async", lambda *a, **kw: None)
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
    return ShopEventDelivery.objects.get(event__order=order)


@pytest.mark.django_db(transaction=True)
def test_a_short_shop_event_retry_is_a_countdown(
    make_order: Callable[..., Order],
    failing_shop: ScriptedReceiver,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.CELERY_MAX_COUNTDOWN_SECONDS = 300  # the first backoff is 30 s +-20 %
    delivery = _recorded_delivery(make_order(), monkeypatch)
    retries = _retry_recorder(monkeypatch)

    with pytest.raises(Retried):
        tasks.deliver_shop_event(str(delivery.pk))

    assert len(retries) == 1 and 23 <= retries[0]["countdown"] <= 37


@pytest.mark.django_db(transaction=True)
def test_a_long_shop_event_retry_waits_in_the_database_for_the_sweep(
    make_order: Callable[..., Order],
    failing_shop: ScriptedReceiver,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.CELERY_MAX_COUNTDOWN_SECONDS = 10
    delivery = _recorded_delivery(make_order(), monkeypatch)
    retries = _retry_recorder(monkeypatch)

    assert tasks.deliver_shop_event(str(delivery.pk)) == "failed"

    assert retries == []  # nothing waits in the broker
    due = ShopEventDelivery.objects.get(pk=delivery.pk).next_attempt_at
    assert due is not None and due > timezone.now() + timedelta(seconds=20)
    assert service.shop_events_redeliver_due(grace_seconds=0) == []  # not due yet
    ShopEventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    swept: list[str] = []
    monkeypatch.setattr(
        tasks.deliver_shop_event, "apply_async", lambda args, **kw: swept.append(args[0])
    )
    assert tasks.redeliver_shop_events(grace_seconds=0) == 1
    assert swept == [str(delivery.pk)]
    assert tasks.deliver_shop_event(str(delivery.pk)) == "delivered"
    assert tasks.deliver_shop_event(str(delivery.pk)) == "skipped"  # a duplicate sends nothing
    assert len(failing_shop.received) == 2


# --- Time limits ------------------------------------------------------------------------


def test_an_attempt_is_killed_before_its_claim_runs_out() -> None:
    soft, hard = service.attempt_time_limits()
    assert soft < hard < service._lease().total_seconds()
    assert tasks.deliver_shop_event.soft_time_limit == soft
    assert tasks.deliver_shop_event.time_limit == hard
    for task in (tasks.redeliver_shop_events, tasks.run_sweep):
        assert task.soft_time_limit < task.time_limit
    assert django_settings.CELERY_TASK_SOFT_TIME_LIMIT < django_settings.CELERY_TASK_TIME_LIMIT


class TricklingShop:
    """A shop whose first answer never ends (a header byte every 0.3 s: no read times out);
    later connections are answered 204 at once."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/events"
        self.connections = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(
                target=self._answer, args=(conn, self.connections), daemon=True
            ).start()

    def _answer(self, conn: socket.socket, number: int) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                if number > 1:
                    conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self.stopped.wait(0.3):
                    conn.sendall(b"a")
            except OSError:
                return  # the worker gave up on it

    def stop(self) -> None:
        self.stopped.set()
        self.server.close()


@pytest.mark.worker
def test_an_attempt_over_its_time_limit_is_stopped_and_the_sweep_sends_it_again(
    start_worker: Callable[..., Any],
    make_order: Callable[..., Order],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = TricklingShop()
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = shop.url, SECRET
    settings.SHOP_WEBHOOK_TIMEOUT = 1.0
    try:
        start_worker(
            "time-limits",
            SHOP_WEBHOOK_URL=shop.url,
            SHOP_WEBHOOK_SECRET=SECRET,
            SHOP_WEBHOOK_TIMEOUT="1",  # soft limit 17 s, hard 32 s
            CELERY_MAX_COUNTDOWN_SECONDS="0",  # every retry waits for the sweep
        )
        order = make_order()
        order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")  # enqueued
        delivery = ShopEventDelivery.objects.get(event__order=order)

        def recorded() -> bool:
            return delivery.attempt_log.exists()

        deadline = time.monotonic() + 40
        while not recorded():
            assert time.monotonic() < deadline, "the hung attempt was never stopped"
            time.sleep(0.2)
        delivery.refresh_from_db()
        attempt = delivery.attempt_log.get()
        assert not attempt.ok and "time limit" in attempt.error, attempt.error
        assert delivery.delivered_at is None and delivery.next_attempt_at is not None
        assert attempt.duration_ms >= 15_000  # it hung until the soft limit, not a read timeout

        # Time passes: the retry is overdue; beat's sweep sends it again.
        ShopEventDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() - timedelta(minutes=2)
        )
        tasks.redeliver_shop_events.delay()
        deadline = time.monotonic() + 30
        while ShopEventDelivery.objects.get(pk=delivery.pk).delivered_at is None:
            assert time.monotonic() < deadline, "the sweep did not deliver it"
            time.sleep(0.2)
        delivery.refresh_from_db()
        assert delivery.attempts == 2 and shop.connections == 2
    finally:
        shop.stop()
