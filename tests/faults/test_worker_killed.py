"""A worker killed in the middle of a delivery task (acks_late): the effect happens once.

merchant/settings.py: CELERY_TASK_ACKS_LATE and CELERY_TASK_REJECT_ON_WORKER_LOST, so
a task whose pool process dies goes back to the queue and runs again. What makes
that safe is the attempt's claim (a conditional UPDATE that leases the event): the
redelivered task finds the attempt in progress and sends nothing; once the lease
and beat's grace are over, the sweep sends the event again, and a delivered event
is never sent again. The shop sees the same event id and bytes at most twice (the
interrupted POST and the one it answers), and acknowledges it once.

Runs on whichever broker the suite runs on (filesystem or Redis).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from payments.models import Order, ShopEvent, ShopEventAttempt, ShopEventDelivery
from payments.services import order_transition
from payments.services.shop_events import shop_events_redeliver_due
from payments.states import OrderStatus
from payments.tasks import redeliver_shop_events
from tests.faults.conftest import wait_until
from tests.http_receiver import ScriptedReceiver, scripted
from tests.standard_webhooks import verifies

pytestmark = pytest.mark.worker

SECRET = "whsec_ZmF1bHRzLXdvcmtlci1raWxsZWQtc2VjcmV0LTMyYnk="
TIMEOUT = 20  # seconds the worker waits for the shop; the attempt's lease is 2x + 60 s
HELD = 25.0  # the shop holds the first POST longer than the test needs


def test_a_worker_killed_mid_delivery_delivers_the_event_once(
    start_worker: Callable[..., Any], make_order: Callable[..., Order], settings: Any
) -> None:
    shop = ScriptedReceiver(scripted(((204, b"", HELD), (204, b""))), path="/shop/events").start()
    try:
        shop_event_settings = {"SHOP_WEBHOOK_URL": shop.url, "SHOP_WEBHOOK_SECRET": SECRET}
        settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = shop.url, SECRET
        doomed = start_worker(
            "doomed", concurrency=1, SHOP_WEBHOOK_TIMEOUT=str(TIMEOUT), **shop_event_settings
        )
        order = make_order(reference="killed")

        order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")  # enqueues
        event = ShopEvent.objects.get(order=order)
        delivery = ShopEventDelivery.objects.get(event=event)
        wait_until(lambda: len(shop.received) == 1, 30, "the worker's POST to reach the shop")
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.delivered_at) == (1, None)

        for pid in doomed.pool_pids():
            os.kill(pid, signal.SIGKILL)  # dies while the shop holds its POST
        # The task comes back (reject_on_worker_lost) and runs in a new pool process: the
        # attempt's lease is still on, so it sends nothing.
        wait_until(
            lambda: "'skipped'" in doomed.log_path.read_text(errors="replace"),
            30,
            "the redelivered task to run (and skip)",
        )
        doomed.stop()
        assert len(shop.received) == 1
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.delivered_at) == (1, None)
        assert not ShopEventAttempt.objects.filter(delivery=delivery).exists()  # died unrecorded

        # Not yet: the lease keeps the sweep off the attempt in progress.
        assert shop_events_redeliver_due() == []
        # Later: the lease and beat's grace are over; beat's sweep runs on a new worker.
        start_worker(
            "replacement", concurrency=1, SHOP_WEBHOOK_TIMEOUT=str(TIMEOUT), **shop_event_settings
        )
        past = timezone.now() - timedelta(seconds=61)
        ShopEventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=past)
        redeliver_shop_events.delay()
        wait_until(
            lambda: ShopEventDelivery.objects.get(pk=delivery.pk).delivered_at is not None,
            30,
            "the sweep to deliver the event",
        )

        delivery.refresh_from_db()
        assert delivery.attempts == 2
        attempts = list(ShopEventAttempt.objects.filter(delivery=delivery))
        assert [(a.ok, a.http_status) for a in attempts] == [(True, 204)]
        assert len(shop.received) == 2
        for received in shop.received:  # the same event, byte for byte: the shop dedupes by id
            assert received.headers["webhook-id"] == str(event.pk)
            assert received.body == event.body.encode()
            assert verifies(received, SECRET)
        # Delivered is final: the sweep never picks it again.
        ShopEventDelivery.objects.filter(pk=delivery.pk).update(created=past)
        assert shop_events_redeliver_due(grace_seconds=0) == []
        assert len(shop.received) == 2
    finally:
        shop.stop()


def test_a_worker_killed_mid_ipn_delivery_acknowledges_the_ipn_once(
    start_worker: Callable[..., Any], transactional_db: None
) -> None:
    """The sandbox gateway's IPN task (acks_late by the project's default), the same way."""
    from sandbox import services as sandbox
    from sandbox.accounts import ensure_configured_account
    from sandbox.models import IpnAttempt, IpnDelivery
    from sandbox.tasks import redeliver_due_ipns
    from tests.sandbox.conftest import make_order as sandbox_order

    receiver = ScriptedReceiver(
        scripted(((200, b"[OK]", HELD), (200, b"[OK]"))), path="/payments/ipn/"
    ).start()
    try:
        ipn = {"SANDBOX_IPN_TIMEOUT": str(TIMEOUT), "SANDBOX_IPN_RETRY_SECONDS": "1800"}
        doomed = start_worker("doomed-ipn", concurrency=1, **ipn)
        account, _ = ensure_configured_account()
        placed = sandbox_order(account, ipn=receiver.url)
        payment = sandbox.payment_pay(order=placed, method="account", amount_btc_int=50_000_000)
        delivery = IpnDelivery.objects.get(payment=payment)  # committed: enqueued at once
        wait_until(lambda: len(receiver.received) == 1, 30, "the IPN to reach the service")

        for pid in doomed.pool_pids():
            os.kill(pid, signal.SIGKILL)  # dies while the service holds the IPN
        wait_until(
            lambda: "'skipped'" in doomed.log_path.read_text(errors="replace"),
            30,
            "the redelivered task to run (and skip)",
        )
        doomed.stop()
        assert len(receiver.received) == 1
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.delivered_at) == (1, None)
        assert sandbox.ipn_redeliver_due() == []  # not overdue: the attempt's claim holds

        # Past the retry interval and the sweep's grace: beat's sweep on a new worker.
        start_worker("replacement-ipn", concurrency=1, **ipn)
        past = timezone.now() - timedelta(seconds=301)
        IpnDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=past)
        redeliver_due_ipns.delay()
        wait_until(
            lambda: IpnDelivery.objects.get(pk=delivery.pk).delivered_at is not None,
            30,
            "the sweep to deliver the IPN",
        )

        delivery.refresh_from_db()
        assert delivery.attempts == 2
        attempts = IpnAttempt.objects.filter(delivery=delivery)
        assert [(a.ok, a.reply) for a in attempts] == [(True, "[OK]")]
        assert [r.body for r in receiver.received] == [delivery.body.encode("ascii")] * 2
        assert sandbox.ipn_redeliver_due(grace_seconds=0) == []  # acknowledged: never again
        assert len(receiver.received) == 2
    finally:
        receiver.stop()
