"""IPN delivery: signed POSTs of the exact body, re-sent until "[OK]", never after.

The receiver is a real HTTP server in a thread. Most tests run the Celery task
in-process (`apply`: retries run at once, SANDBOX_IPN_RETRY_SECONDS=0); the
last one runs a real worker process with a 1 s retry interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from payments.gateway import signing
from sandbox import services, tasks
from sandbox.models import IpnAttempt, IpnDelivery, LedgerEntry, SandboxAccount, SandboxPayment
from tests.sandbox.conftest import Receiver, make_order

OK = (200, b"[OK]")
FAIL = (200, b"fail")


def paid_delivery(account: SandboxAccount, url: str, **order: Any) -> IpnDelivery:
    placed = make_order(account, ipn=url, **order)
    payment = services.payment_pay(order=placed, method="account")
    return IpnDelivery.objects.get(payment=payment)


def assert_signed_by(received: Any, account: SandboxAccount, delivery: IpnDelivery) -> None:
    assert received.body == delivery.body.encode("ascii")
    assert received.path == "/payments/ipn/"
    assert received.headers["Rest-Key"] == str(account.api_key)
    assert signing.verify(received.body, received.headers["Rest-Sign"], account.secret)
    assert received.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert received.headers["User-Agent"]


@pytest.mark.django_db
def test_fail_fail_ok_is_sent_three_times_and_then_never_again(
    account: SandboxAccount, ipn_receiver: Callable[..., Receiver], fast_ipn_retries: Any
) -> None:
    receiver = ipn_receiver(FAIL, FAIL, OK)
    delivery = paid_delivery(account, receiver.url)

    result = tasks.deliver_ipn.apply(args=[delivery.pk])

    assert result.successful(), result.traceback
    assert len(receiver.received) == 3
    for received in receiver.received:
        assert_signed_by(received, account, delivery)
    delivery.refresh_from_db()
    assert delivery.attempts == 3
    assert delivery.delivered_at is not None
    assert delivery.next_attempt_at is None
    attempts = list(IpnAttempt.objects.filter(delivery=delivery).order_by("id"))
    assert [(a.http_status, a.reply, a.ok) for a in attempts] == [
        (200, "fail", False),
        (200, "fail", False),
        (200, "[OK]", True),
    ]

    # Acknowledged: neither a duplicate task nor the sweep sends it again.
    assert tasks.deliver_ipn.apply(args=[delivery.pk]).result == "skipped"
    assert services.ipn_redeliver_due(grace_seconds=0) == []
    assert services.ipn_delivery_resend(delivery_id=delivery.pk) is False
    time.sleep(0.2)
    assert len(receiver.received) == 3


@pytest.mark.django_db
def test_the_ipn_data_and_body_bytes_are_exactly_the_recorded_ones(
    account: SandboxAccount, ipn_receiver: Callable[..., Receiver], fast_ipn_retries: Any
) -> None:
    receiver = ipn_receiver(OK)
    delivery = paid_delivery(account, receiver.url, data="ref=7&name=Zoë")

    tasks.deliver_ipn.apply(args=[delivery.pk])

    [received] = receiver.received
    assert received.body == delivery.body.encode("ascii")
    assert received.body.endswith(b"&data=ref%3D7%26name%3DZo%C3%AB")
    assert_signed_by(received, account, delivery)


@pytest.mark.django_db
def test_a_non_200_and_a_timeout_are_failures_recorded_as_attempts(
    account: SandboxAccount, ipn_receiver: Callable[..., Receiver], fast_ipn_retries: Any
) -> None:
    fast_ipn_retries.SANDBOX_IPN_TIMEOUT = 0.3
    receiver = ipn_receiver((500, b"[OK]"), (200, b"[OK]", 1.5), OK)
    delivery = paid_delivery(account, receiver.url)

    outcomes = [services.ipn_delivery_attempt(delivery_id=delivery.pk) for _ in range(3)]

    assert [o.result for o in outcomes] == ["failed", "failed", "delivered"]
    assert [o.retry_in for o in outcomes] == [0, 0, None]
    first, second, third = IpnAttempt.objects.filter(delivery=delivery).order_by("id")
    assert (first.http_status, first.ok, first.reply) == (500, False, "[OK]")
    assert (second.http_status, second.ok) == (None, False)
    assert "Timeout" in second.error
    assert third.ok


@pytest.mark.django_db
@pytest.mark.parametrize(
    "reply",
    [
        (200, b"[OK]\n"),
        (200, b" [OK]"),
        (200, b"[ok]"),
        (200, b"OK"),
        (200, b""),
        (201, b"[OK]"),
        (302, b"[OK]"),
        (200, b"[OK]" + b"x" * 5000),
    ],
)
def test_only_exactly_ok_with_http_200_acknowledges(
    account: SandboxAccount,
    ipn_receiver: Callable[..., Receiver],
    fast_ipn_retries: Any,
    reply: tuple[int, bytes],
) -> None:
    receiver = ipn_receiver(reply)
    delivery = paid_delivery(account, receiver.url)

    assert services.ipn_delivery_attempt(delivery_id=delivery.pk).result == "failed"

    attempt = IpnAttempt.objects.get(delivery=delivery)
    assert not attempt.ok
    assert attempt.http_status == reply[0]
    assert len(attempt.reply) <= 200
    delivery.refresh_from_db()
    assert delivery.delivered_at is None


@pytest.mark.django_db
def test_an_unreachable_receiver_is_a_recorded_failure(
    account: SandboxAccount, fast_ipn_retries: Any
) -> None:
    delivery = paid_delivery(account, "http://127.0.0.1:9/ipn")  # nothing listens there

    outcome = services.ipn_delivery_attempt(delivery_id=delivery.pk)

    assert outcome.result == "failed"
    attempt = IpnAttempt.objects.get(delivery=delivery)
    assert attempt.http_status is None and attempt.error


class Retried(Exception):
    """What the captured `deliver_ipn.retry` raises (Celery's own would re-enqueue)."""


def capture_retries(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`deliver_ipn.retry`'s arguments, one dict per retry asked for; it raises Retried."""
    retries: list[dict[str, Any]] = []

    def fake_retry(**kwargs: Any) -> Retried:
        retries.append(kwargs)
        return Retried()

    monkeypatch.setattr(tasks.deliver_ipn, "retry", fake_retry)
    return retries


@pytest.mark.django_db
def test_a_short_retry_waits_in_the_broker_as_a_countdown(
    account: SandboxAccount,
    ipn_receiver: Callable[..., Receiver],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.SANDBOX_IPN_RETRY_SECONDS = 60
    settings.CELERY_MAX_COUNTDOWN_SECONDS = 60
    delivery = paid_delivery(account, ipn_receiver(FAIL).url)
    retries = capture_retries(monkeypatch)
    with pytest.raises(Retried):
        tasks.deliver_ipn(delivery.pk)
    assert retries == [{"countdown": 60}]


@pytest.mark.django_db
def test_a_long_retry_is_kept_in_the_database_not_in_the_broker(
    account: SandboxAccount,
    ipn_receiver: Callable[..., Receiver],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.SANDBOX_IPN_RETRY_SECONDS = 1800  # the gateway's 30 minutes
    settings.CELERY_MAX_COUNTDOWN_SECONDS = 300
    receiver = ipn_receiver(FAIL)
    delivery = paid_delivery(account, receiver.url)
    retries = capture_retries(monkeypatch)
    before = timezone.now()

    assert tasks.deliver_ipn(delivery.pk) == "failed"

    assert retries == []  # nothing held by the broker for 30 minutes
    delivery.refresh_from_db()
    # The schedule is in the database, for the sweep.
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at >= before + timedelta(seconds=1800)
    # Not due yet: a duplicate task does nothing, and the sweep does not take it.
    assert services.ipn_delivery_attempt(delivery_id=delivery.pk).result == "skipped"
    assert services.ipn_redeliver_due(grace_seconds=0) == []
    # Once due, the sweep enqueues it and the attempt is made.
    IpnDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    enqueued: list[int] = []
    monkeypatch.setattr(services, "_enqueue", enqueued.append)
    assert services.ipn_redeliver_due(grace_seconds=0) == [delivery.pk] == enqueued
    assert tasks.deliver_ipn(delivery.pk) == "failed"
    assert len(receiver.received) == 2


@pytest.mark.django_db
def test_the_sweep_re_enqueues_only_overdue_undelivered_deliveries(
    account: SandboxAccount, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.SANDBOX_IPN_SWEEP_GRACE_SECONDS = 600
    enqueued: list[int] = []
    monkeypatch.setattr(services, "_enqueue", enqueued.append)
    now = timezone.now()
    overdue, soon, delivered = (
        paid_delivery(account, "http://127.0.0.1:9/ipn", multipay=True) for _ in range(3)
    )
    IpnDelivery.objects.filter(pk=overdue.pk).update(next_attempt_at=now - timedelta(hours=1))
    IpnDelivery.objects.filter(pk=soon.pk).update(next_attempt_at=now - timedelta(seconds=30))
    IpnDelivery.objects.filter(pk=delivered.pk).update(
        next_attempt_at=None, delivered_at=now - timedelta(hours=2)
    )

    assert tasks.redeliver_due_ipns() == 1

    assert enqueued == [overdue.pk]


@pytest.mark.django_db
def test_each_payment_event_enqueues_its_delivery_after_commit(
    account: SandboxAccount,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(tasks.deliver_ipn, "delay", sent.append)

    with django_capture_on_commit_callbacks(execute=True):
        delivery = paid_delivery(account, "https://shop.example/ipn")

    assert sent == [delivery.pk]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(services.WRONG_IPNS))
def test_a_deliberately_wrong_ipn_is_signed_and_retried_like_any_other(
    account: SandboxAccount,
    ipn_receiver: Callable[..., Receiver],
    fast_ipn_retries: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
    kind: str,
) -> None:
    receiver = ipn_receiver(FAIL, OK)
    order = make_order(account, ipn=receiver.url)
    enqueued: list[int] = []
    monkeypatch.setattr(tasks.deliver_ipn, "delay", enqueued.append)

    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.ipn_send_wrong(order=order, kind=kind)
    assert enqueued == [delivery.pk]  # after the commit, as for a payment
    result = tasks.deliver_ipn.apply(args=[delivery.pk])

    assert result.successful(), result.traceback
    assert len(receiver.received) == 2
    for received in receiver.received:
        assert_signed_by(received, account, delivery)
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.payment) == (2, None)
    assert delivery.delivered_at is not None
    assert [a.ok for a in IpnAttempt.objects.filter(delivery=delivery).order_by("id")] == [
        False,
        True,
    ]
    assert not SandboxPayment.objects.exists()
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_a_task_for_a_vanished_delivery_does_nothing(fast_ipn_retries: Any) -> None:
    assert tasks.deliver_ipn.apply(args=[987654]).result == "skipped"


@pytest.mark.worker
def test_a_real_worker_retries_until_ok_and_then_stops(
    start_worker: Callable[..., Any], ipn_receiver: Callable[..., Receiver]
) -> None:
    from sandbox.accounts import ensure_configured_account

    receiver = ipn_receiver(FAIL, FAIL, OK)
    start_worker("sandbox-ipn", SANDBOX_IPN_RETRY_SECONDS="1")
    account, _ = ensure_configured_account()

    delivery = paid_delivery(account, receiver.url)  # committed: enqueued at once

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.delivered_at is not None:
            break
        time.sleep(0.2)
    assert delivery.delivered_at is not None, [str(a) for a in delivery.attempt_log.all()]
    time.sleep(3.5)  # several retry intervals: nothing more arrives
    assert len(receiver.received) == 3
    for received in receiver.received:
        assert_signed_by(received, account, delivery)
    delivery.refresh_from_db()
    assert delivery.attempts == 3
    assert [a.ok for a in delivery.attempt_log.order_by("id")] == [False, False, True]
