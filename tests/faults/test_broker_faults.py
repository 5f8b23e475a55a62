"""The broker (Redis) stops while notifications arrive.

The service runs in a gunicorn process whose CELERY_BROKER_URL goes through a TCP
proxy that the test cuts; the machine's Redis keeps running. What must hold
(README, Shop webhooks): notifications are applied and answered `[OK]` as usual,
without waiting long on the dead broker; the shop event is recorded with the change
and its enqueueing fails softly; once the broker is back the service publishes
again by itself, and beat's sweep (`redeliver_shop_events`) sends what was not
enqueued, once.

On the embedded filesystem broker there is no server to stop (publishing is a file
write on the local disk), so this is reported as skipped there; the closest case,
a broker nobody listens on, is tests/payments/test_shop_events.py's broker-down test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from payments.models import Order, ShopEvent, ShopEventAttempt, ShopEventDelivery
from payments.tasks import redeliver_shop_events
from payments.testing import ipn_body, post_ipn_http
from tests.faults.conftest import ServiceServer, wait_until
from tests.faults.proxy import TcpProxy, proxied_url
from tests.http_receiver import ScriptedReceiver, scripted

pytestmark = [pytest.mark.redis, pytest.mark.worker]

SECRET = "whsec-faults-5e0c7d1a2b3948f6a7b8c9d0e1f2a3b4"
NOT_ENQUEUED = "not enqueued"


def paid_body(order: Order) -> bytes:
    return ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)


def event_of(order: Order) -> ShopEvent:
    return ShopEvent.objects.get(order=order, type="order.paid")


def delivery_of(order: Order) -> ShopEventDelivery:
    """The paid event's one delivery (to the endpoint of SHOP_WEBHOOK_URL)."""
    return ShopEventDelivery.objects.get(event__order=order, event__type="order.paid")


def test_redis_stopped_ipns_are_applied_and_the_sweep_delivers_later(
    service: Callable[..., ServiceServer],
    proxies: Callable[[str, int], TcpProxy],
    make_order: Callable[..., Order],
    start_worker: Callable[..., Any],
) -> None:
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        pytest.skip(f"needs a networked broker to stop (redis://), not {broker.split(':')[0]}")
    shop = ScriptedReceiver(scripted(((204, b""),)), path="/shop/events").start()
    try:
        proxy = proxies(broker, 6379)
        shop_event_settings = {"SHOP_WEBHOOK_URL": shop.url, "SHOP_WEBHOOK_SECRET": SECRET}
        server = service(CELERY_BROKER_URL=proxied_url(broker, proxy), **shop_event_settings)
        before, during, after = (
            make_order(reference=name) for name in ("before", "during", "after")
        )
        # The service has published through the broker: its connection is open when Redis goes.
        assert post_ipn_http(server.url, paid_body(before)).content == b"[OK]"
        assert proxy.open_connections() >= 1 and NOT_ENQUEUED not in server.log_text()

        proxy.cut()
        started = time.monotonic()
        answer = post_ipn_http(server.url, paid_body(during), timeout=30)
        took = time.monotonic() - started

        assert (answer.status_code, answer.content) == (200, b"[OK]")
        assert took < 5, took  # two quick tries to publish, then the sweep's turn
        during.refresh_from_db()
        assert during.status == "paid"
        assert server.log_text().count(NOT_ENQUEUED) == 1
        missed = delivery_of(during)
        assert (missed.attempts, missed.delivered_at) == (0, None)

        proxy.restore()
        # The service reconnects by itself: the next change is published at once.
        assert post_ipn_http(server.url, paid_body(after)).content == b"[OK]"
        assert server.log_text().count(NOT_ENQUEUED) == 1
        start_worker("faults-broker", **shop_event_settings)
        wait_until(
            lambda: all(delivery_of(o).delivered_at for o in (before, after)),
            30,
            "the events that were enqueued to be delivered",
        )
        missed.refresh_from_db()
        assert missed.attempts == 0  # nothing in the broker for it: only the sweep can send it

        # A minute later (beat's grace for an enqueue still on its way), beat's sweep runs.
        a_minute_ago = timezone.now() - timedelta(seconds=61)
        ShopEventDelivery.objects.filter(pk=missed.pk).update(next_attempt_at=a_minute_ago)
        redeliver_shop_events.delay()
        wait_until(lambda: delivery_of(during).delivered_at is not None, 30, "the sweep's delivery")

        ids = [r.headers["webhook-id"] for r in shop.received]
        assert sorted(ids) == sorted(str(event_of(o).pk) for o in (before, during, after))
        assert ShopEventAttempt.objects.filter(delivery=missed).count() == 1
    finally:
        shop.stop()
