"""A redelivery while an attempt of the same delivery is running (the shop still holds its POST).

The shop is a real HTTP server in a thread that holds the first POST until the test
releases it (then answers 503) and answers later ones 204 at once; it counts the POSTs
in flight. The first attempt runs in a thread, as a worker would; the redelivery comes
while it waits, its retry window already over by the time the shop answers. The task
the redelivery enqueues runs either at once (while the first attempt still waits) or
after it. Either way: one POST in flight at a time, the delivery is not given up (the
redelivery renewed its window) and it is delivered by the next attempt.

Runs on SQLite and PostgreSQL (DATABASE_URL): the attempt's settle and the redelivery
write the same row from two connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from payments.models import Order, ShopEvent, ShopEventDelivery
from payments.services import order_transition
from payments.services import shop_events as service
from payments.services.shop_event_redelivery import shop_event_redeliver
from payments.states import OrderStatus
from tests.http_receiver import QuietHandler, serve_in_background

SECRET = "whsec_c2hvcC1ldmVudHMtdGVzdC1rZXktMzItYnl0ZXMtb2s="
HOLD_LIMIT = 10.0  # the shop never holds a POST longer than this, whatever the test does


class HoldingShop:
    """Holds the first POST until `release()` and answers it 503; answers the others 204."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.first_arrived = threading.Event()
        self.lock = threading.Lock()
        self.posts = 0
        self.in_flight = 0
        self.most_in_flight = 0
        shop = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = shop.arrive()
                # Out of flight once answered: counted down before the answer is sent, or the
                # sender could read it and POST again before this thread gets to count down.
                with shop.lock:
                    shop.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = serve_in_background(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def arrive(self) -> int:
        with self.lock:
            self.posts += 1
            first = self.posts == 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if not first:
            return 204
        self.first_arrived.set()
        self.released.wait(HOLD_LIMIT)
        return 503

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def holding_shop(settings: Any) -> Iterator[HoldingShop]:
    shop = HoldingShop()
    settings.SHOP_WEBHOOK_URL = shop.url
    settings.SHOP_WEBHOOK_SECRET = SECRET
    settings.SHOP_WEBHOOK_TIMEOUT = 15.0  # longer than the shop holds the first POST
    settings.SHOP_WEBHOOK_RETRY_HOURS = 24
    yield shop
    shop.stop()


def in_thread(work: Callable[[], str]) -> tuple[threading.Thread, list[str]]:
    results: list[str] = []

    def run() -> None:
        try:
            results.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("task_runs", ["during the attempt", "after the attempt"])
def test_a_redelivery_during_a_running_attempt_sends_once_at_a_time_and_delivers(
    make_order: Callable[..., Order],
    holding_shop: HoldingShop,
    enqueued: list[str],
    task_runs: str,
) -> None:
    order = make_order()
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
    event = ShopEvent.objects.get(order=order)
    delivery = ShopEventDelivery.objects.get(event=event)
    old_end = timezone.now() + timedelta(seconds=1)  # over before the shop answers
    ShopEventDelivery.objects.filter(pk=delivery.pk).update(gives_up_at=old_end)
    enqueued.clear()

    first, first_result = in_thread(
        lambda: service.shop_event_deliver(delivery_id=delivery.pk).result
    )
    assert holding_shop.first_arrived.wait(HOLD_LIMIT), "the first attempt's POST"

    redelivered = shop_event_redeliver(event=event)
    queued = list(enqueued)
    during = (
        [service.shop_event_deliver(delivery_id=pk).result for pk in queued]
        if task_runs == "during the attempt"
        else []
    )
    while timezone.now() <= old_end:  # the first attempt ends after the old window
        time.sleep(0.05)
    holding_shop.released.set()
    first.join(HOLD_LIMIT + 5)
    after = [service.shop_event_deliver(delivery_id=pk).result for pk in queued]

    assert holding_shop.most_in_flight == 1
    assert redelivered.deliveries == [delivery.pk] and redelivered.enqueued == 1  # going out
    assert first_result == ["failed"]
    assert set(during + after) <= {"skipped"}  # the retry is the first attempt's to schedule
    delivery.refresh_from_db()
    assert delivery.given_up_at is None and delivery.delivered_at is None
    assert delivery.next_attempt_at is not None
    assert timezone.now() < delivery.next_attempt_at <= delivery.gives_up_at
    assert delivery.gives_up_at > old_end + timedelta(hours=23)

    ShopEventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert service.shop_event_deliver(delivery_id=delivery.pk).result == "delivered"
    assert holding_shop.posts == 2 and holding_shop.most_in_flight == 1
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None and delivery.attempts == 2
    assert delivery.attempt_log.count() == 2


@pytest.mark.django_db(transaction=True)
def test_an_attempt_leaves_alone_a_delivery_another_writer_took_over(
    make_order: Callable[..., Order], holding_shop: HoldingShop, enqueued: list[str]
) -> None:
    """Its settle is conditional on its own claim: a state set meanwhile stands."""
    order = make_order()
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
    delivery = ShopEventDelivery.objects.get(event__order=order)

    first, first_result = in_thread(
        lambda: service.shop_event_deliver(delivery_id=delivery.pk).result
    )
    assert holding_shop.first_arrived.wait(HOLD_LIMIT), "the first attempt's POST"
    later = timezone.now() + timedelta(minutes=5)  # e.g. a claim after the lease ran out
    ShopEventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=later)
    holding_shop.released.set()
    first.join(HOLD_LIMIT + 5)

    assert first_result == ["failed"]
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == later and delivery.last_error == ""
    assert delivery.attempt_log.get().http_status == 503  # the attempt is recorded all the same
