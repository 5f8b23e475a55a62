"""The database goes away or is locked while the gateway's notifications arrive.

The service runs in a gunicorn process of its own. "Stopped" is PostgreSQL behind
a TCP proxy that the test cuts (every connection dropped, new ones refused) and
restores; the machine's server keeps running. "Locked" is another connection
holding a lock, with a lock timeout configured for the service.

What must hold: never `[OK]` for a notification that is not committed, nothing
half-written, and once the database is back the gateway's retry (the same bytes
again) lands and the order ends right, paid once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from payments.models import Notification, Order, OrderTransition, Payment
from payments.services.sweeps import notifications_apply_pending
from payments.testing import ipn_body, post_ipn_http
from tests.conftest import database_url
from tests.faults.conftest import DbLock, ServiceServer, require_postgres, wait_until
from tests.faults.proxy import TcpProxy, proxied_url

LOCK_TIMEOUT_MS = 1500


def paid_body(order: Order) -> bytes:
    return ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)


def stored(body: bytes) -> Notification | None:
    return Notification.objects.filter(body_sha256=hashlib.sha256(body).hexdigest()).first()


def assert_untouched(order: Order, body: bytes) -> None:
    """Nothing of the notification was written: no row, no payment, no transition."""
    assert stored(body) is None
    order.refresh_from_db()
    assert order.status == "awaiting_payment"
    assert not Payment.objects.filter(order=order).exists()
    assert not OrderTransition.objects.filter(order=order).exists()


def assert_paid_once(order: Order, body: bytes, times_received: int) -> None:
    order.refresh_from_db()
    assert order.status == "paid"
    assert Payment.objects.filter(order=order).count() == 1
    assert list(
        OrderTransition.objects.filter(order=order).values_list("to_status", flat=True)
    ) == ["paid"]
    notification = stored(body)
    assert notification is not None
    assert notification.outcome == "applied"
    assert notification.times_received == times_received


def post(server: ServiceServer, body: bytes) -> requests.Response:
    return post_ipn_http(server.url, body, timeout=30)


def proxied_service(
    service: Callable[..., ServiceServer], proxies: Callable[[str, int], TcpProxy], **env: Any
) -> tuple[ServiceServer, TcpProxy]:
    proxy = proxies(database_url(), 5432)
    return service(DATABASE_URL=proxied_url(database_url(), proxy), **env), proxy


@pytest.mark.postgres
def test_postgres_stopped_ipn_is_503_nothing_is_written_and_the_retry_lands(
    service: Callable[..., ServiceServer],
    proxies: Callable[[str, int], TcpProxy],
    make_order: Callable[..., Order],
) -> None:
    require_postgres("the service reaches its database over TCP through a proxy")
    server, proxy = proxied_service(service, proxies)
    warm, order = make_order(reference="warm"), make_order(reference="stopped")
    # The service holds a live database connection (CONN_MAX_AGE) when the server goes.
    assert post(server, paid_body(warm)).content == b"[OK]"
    assert proxy.open_connections() >= 1

    proxy.cut()
    body = paid_body(order)
    answers = [post(server, body) for _ in range(2)]  # the gateway tries, and tries again

    assert [(a.status_code, a.content) for a in answers] == [
        (503, b"Temporarily unable to store the notification; retry later.\n")
    ] * 2
    assert_untouched(order, body)

    proxy.restore()
    retry = post(server, body)  # the gateway's next retry, the same bytes

    assert (retry.status_code, retry.content) == (200, b"[OK]")
    assert_paid_once(order, body, times_received=1)
    assert post(server, body).content == b"[OK]"  # and once more: a duplicate, nothing new
    assert_paid_once(order, body, times_received=2)


@pytest.mark.postgres
def test_postgres_lost_in_the_middle_of_a_notification_leaves_nothing_half_written(
    service: Callable[..., ServiceServer],
    proxies: Callable[[str, int], TcpProxy],
    make_order: Callable[..., Order],
    db_lock: DbLock,
) -> None:
    """The notification row is inserted, the order lock awaited, and the connection dies."""
    require_postgres("the service reaches its database over TCP through a proxy")
    server, proxy = proxied_service(service, proxies, lock_timeout_ms=20_000)
    order = make_order(reference="mid-transaction")
    body = paid_body(order)
    db_lock.lock_order_row(order.pk)
    answers: list[requests.Response] = []
    sender = threading.Thread(target=lambda: answers.append(post(server, body)))
    sender.start()
    try:
        # The service's transaction has stored the notification and waits for the order row.
        wait_until(lambda: db_lock.waiters() >= 1, 15, "the service to wait for the order lock")
        assert db_lock.writers_of("payments_notification") == 1  # its row is in, uncommitted
        proxy.cut()
        sender.join(timeout=30)
    finally:
        db_lock.release()
        sender.join(timeout=30)

    assert [(a.status_code, a.content[:4]) for a in answers] == [(503, b"Temp")]
    # The backend finds its client gone once it gets the lock: its transaction rolls back.
    wait_until(lambda: db_lock.waiters() == 0, 15, "the orphaned backend to give up")
    assert_untouched(order, body)

    proxy.restore()
    assert post(server, body).content == b"[OK]"
    assert_paid_once(order, body, times_received=1)


def test_inbox_locked_ipn_is_503_after_the_lock_timeout_and_the_retry_lands(
    service: Callable[..., ServiceServer], make_order: Callable[..., Order], db_lock: DbLock
) -> None:
    """PostgreSQL: the notification table locked; SQLite: another process holds the write lock."""
    server = service(lock_timeout_ms=LOCK_TIMEOUT_MS)
    order = make_order(reference="inbox-locked")
    body = paid_body(order)
    db_lock.lock_tables("payments_notification")

    started = time.monotonic()
    answer = post(server, body)
    waited = time.monotonic() - started

    assert (answer.status_code, answer.content[:4]) == (503, b"Temp")
    assert LOCK_TIMEOUT_MS / 1000 * 0.9 <= waited < 10, waited  # waited its timeout, not forever
    assert "IPN could not be stored" in server.log_text()
    db_lock.release()
    assert_untouched(order, body)

    retry = post(server, body)

    assert (retry.status_code, retry.content) == (200, b"[OK]")
    assert_paid_once(order, body, times_received=1)


@pytest.mark.postgres
def test_order_row_locked_ipn_is_503_nothing_is_written_and_the_retry_lands(
    service: Callable[..., ServiceServer], make_order: Callable[..., Order], db_lock: DbLock
) -> None:
    """The order row held (another request, a sweep) past the service's lock timeout.

    A transient database failure is not a failure to apply: the whole transaction rolls
    back, the notification too, and the answer is 503 so that the gateway sends it again.
    """
    require_postgres("a row lock with a lock timeout (SQLite locks the whole database)")
    server = service(lock_timeout_ms=LOCK_TIMEOUT_MS)
    order = make_order(reference="row-locked")
    body = paid_body(order)
    db_lock.lock_order_row(order.pk)

    answer = post(server, body)

    assert (answer.status_code, answer.content[:4]) == (503, b"Temp")
    assert "lock timeout" in server.log_text()
    assert_untouched(order, body)  # not even the notification row: the retry brings it back
    assert notifications_apply_pending(older_than_seconds=0)["examined"] == 0

    db_lock.release()
    retry = post(server, body)

    assert (retry.status_code, retry.content) == (200, b"[OK]")
    assert_paid_once(order, body, times_received=1)
    assert post(server, body).content == b"[OK]"  # the gateway sending it again changes nothing
    assert_paid_once(order, body, times_received=2)
