"""The same notification delivered 20 times at once over real HTTP: applied exactly once.

Runs on whichever database the suite runs on; CI runs it on PostgreSQL,
where the row lock and the unique constraints do the work.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from payments import signals
from payments.models import Notification, Payment
from payments.testing import ipn_body, post_ipn_http

pytestmark = pytest.mark.django_db(transaction=True)

DELIVERIES = 20


def test_twenty_concurrent_deliveries_apply_once(live_server: Any, make_order: Any) -> None:
    order = make_order(reference="concurrent")
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    paid_signals: list[str] = []
    lock = threading.Lock()

    def on_paid(sender: Any, order: Any, **kwargs: Any) -> None:
        with lock:
            paid_signals.append(order.reference)

    start = threading.Barrier(DELIVERIES)

    def deliver(_: int) -> tuple[int, bytes]:
        start.wait()
        response = post_ipn_http(live_server.url, body, timeout=30)
        return response.status_code, response.content

    signals.order_paid.connect(on_paid)
    try:
        with ThreadPoolExecutor(DELIVERIES) as pool:
            answers = list(pool.map(deliver, range(DELIVERIES)))
    finally:
        signals.order_paid.disconnect(on_paid)

    assert answers == [(200, b"[OK]")] * DELIVERIES
    order.refresh_from_db()
    assert order.status == "paid"
    assert Payment.objects.filter(order=order).count() == 1
    assert order.transitions.count() == 1
    assert paid_signals == ["concurrent"]
    stored = Notification.objects.get()
    assert stored.times_received == DELIVERIES
