"""Applying notifications: the state table, every flag, duplicates, signals after commit."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from payments import signals
from payments.models import Notification, Order, Payment
from payments.testing import ipn_body, post_ipn

pytestmark = pytest.mark.django_db(transaction=True)  # signals are sent on commit


def send(client: Client, order: Order, status: str, **fields: Any) -> Notification:
    fields.setdefault("data", order.data or None)
    if status == "paid":
        fields.setdefault("amount_int", order.amount_int)
    body = ipn_body(transaction=order.transaction, status=status, **fields)
    assert post_ipn(client, body).content == b"[OK]"
    return Notification.objects.get(body_sha256=hashlib.sha256(body).hexdigest())


def flags(order: Order) -> list[str]:
    return sorted(order.flags.values_list("kind", flat=True))


def status_of(order: Order) -> str:
    order.refresh_from_db()
    return order.status


@pytest.fixture
def received() -> Iterator[list[tuple[str, str]]]:
    """Every shop signal sent, as (signal name, order reference)."""
    seen: list[tuple[str, str]] = []
    names = ("order_paid", "order_confirming", "order_cancelled", "order_expired", "order_flagged")

    def receiver_for(name: str) -> Any:
        def receiver(sender: Any, order: Order, **kwargs: Any) -> None:
            seen.append((name, order.reference))

        return receiver

    receivers = {name: receiver_for(name) for name in names}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    yield seen
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def test_partial_then_paid(client: Client, make_order: Any, received: list[Any]) -> None:
    order = make_order(reference="p1")
    payment_id = uuid.uuid4()

    send(client, order, "partial", payment_id=payment_id, amount_pending=order.amount_int)
    assert status_of(order) == "confirming"
    payment = Payment.objects.get()
    assert (payment.status, payment.amount_pending, payment.amount_valid) == (
        "partial", order.amount_int, 0,
    )  # fmt: skip

    send(client, order, "paid", payment_id=payment_id)
    assert status_of(order) == "paid"
    payment.refresh_from_db()
    assert (payment.status, payment.amount_int, payment.currency, payment.method) == (
        "paid", order.amount_int, "BTC", "MTGOXBTC",
    )  # fmt: skip
    assert payment.paid_at is not None
    assert received == [("order_confirming", "p1"), ("order_paid", "p1")]
    assert [t.to_status for t in order.transitions.all()] == ["confirming", "paid"]


def test_cancel_an_unpaid_order(client: Client, make_order: Any, received: list[Any]) -> None:
    order = make_order(reference="c1")
    note = send(client, order, "cancelled")
    assert status_of(order) == "cancelled"
    assert note.outcome == "applied"
    assert received == [("order_cancelled", "c1")]


def test_underpaid_btc_order_stays_unpaid_and_is_flagged(
    client: Client, make_order: Any, received: list[Any]
) -> None:
    order = make_order(reference="u1", amount_int=100_000_000)
    note = send(client, order, "paid", amount_int=60_000_000)

    assert status_of(order) == "awaiting_payment"
    assert flags(order) == ["underpaid"]
    assert note.outcome == "flagged" and note.needs_review
    assert Payment.objects.get().amount_int == 60_000_000  # the money is recorded
    assert received == [("order_flagged", "u1")]


def test_multipay_top_up_pays_an_underpaid_order(client: Client, make_order: Any) -> None:
    order = make_order(amount_int=100_000_000, multipay=True)
    send(client, order, "paid", amount_int=60_000_000)
    send(client, order, "paid", amount_int=40_000_000)
    assert status_of(order) == "paid"
    assert Payment.objects.filter(order=order, status="paid").count() == 2


def test_overpaid_btc_order_is_paid_and_flagged(client: Client, make_order: Any) -> None:
    order = make_order(amount_int=100_000_000)
    send(client, order, "paid", amount_int=150_000_000)
    assert status_of(order) == "paid"
    assert flags(order) == ["overpaid"]


def test_fiat_order_records_the_btc_amount_and_the_implied_rate(
    client: Client, make_order: Any
) -> None:
    order = make_order(currency="USD", amount_int=1_250_000)  # 12.50 USD
    send(client, order, "paid", amount_int=100_000_000, currency="BTC")  # for 1 BTC

    assert status_of(order) == "paid"
    payment = Payment.objects.get()
    assert payment.amount_int == 100_000_000 and payment.currency == "BTC"
    assert payment.implied_rate == Decimal("12.5")


def test_data_mismatch_is_flagged_without_a_state_change(client: Client, make_order: Any) -> None:
    order = make_order(data="order=42")
    note = send(client, order, "paid", data="order=43")
    assert status_of(order) == "awaiting_payment"
    assert flags(order) == ["data_mismatch"]
    assert note.outcome == "flagged"


def test_missing_data_when_we_sent_some_is_a_mismatch(client: Client, make_order: Any) -> None:
    order = make_order(data="order=42")
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    post_ipn(client, body)
    assert status_of(order) == "awaiting_payment"
    assert flags(order) == ["data_mismatch"]


def test_closed_is_flagged(client: Client, make_order: Any) -> None:
    order = make_order()
    note = send(client, order, "closed")
    assert status_of(order) == "awaiting_payment"
    assert flags(order) == ["unexpected_notification"]
    assert note.needs_review


def test_paid_order_is_not_cancelled(client: Client, make_order: Any, received: list[Any]) -> None:
    order = make_order(reference="k1")
    send(client, order, "paid")
    note = send(client, order, "cancelled")
    assert status_of(order) == "paid"
    assert flags(order) == ["unexpected_notification"]
    assert note.outcome == "flagged"
    assert received == [("order_paid", "k1"), ("order_flagged", "k1")]


def test_paid_order_is_not_downgraded_by_a_new_partial(client: Client, make_order: Any) -> None:
    order = make_order()
    send(client, order, "paid")
    send(client, order, "partial", amount_pending=5)
    assert status_of(order) == "paid"
    assert flags(order) == ["late"]


def test_a_late_partial_of_the_same_payment_is_stale(client: Client, make_order: Any) -> None:
    order = make_order()
    payment_id = uuid.uuid4()
    send(client, order, "paid", payment_id=payment_id)
    note = send(client, order, "partial", payment_id=payment_id, amount_pending=5)
    assert status_of(order) == "paid"
    assert note.outcome == "stale"
    assert flags(order) == []


@pytest.mark.parametrize("status", ["cancelled", "expired"])
def test_money_that_arrives_late_wins(
    client: Client, make_order: Any, received: list[Any], status: str
) -> None:
    order = make_order(reference="l1", status=status)
    note = send(client, order, "paid")
    assert status_of(order) == "paid"
    assert flags(order) == ["late"]
    assert note.outcome == "applied"
    assert received == [("order_paid", "l1"), ("order_flagged", "l1")]


def test_second_payment_on_a_paid_order_without_multipay_is_flagged(
    client: Client, make_order: Any
) -> None:
    order = make_order()
    send(client, order, "paid")
    send(client, order, "paid")  # another payment_id
    assert status_of(order) == "paid"
    assert Payment.objects.filter(order=order, status="paid").count() == 2  # nothing lost
    assert flags(order) == ["unexpected_notification"]


def test_duplicates_change_nothing(client: Client, make_order: Any, received: list[Any]) -> None:
    order = make_order(reference="d1")
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    for _ in range(5):
        post_ipn(client, body)
    assert status_of(order) == "paid"
    assert Payment.objects.count() == 1
    assert order.transitions.count() == 1
    assert received == [("order_paid", "d1")]


def test_the_same_payment_in_a_new_body_is_a_duplicate(client: Client, make_order: Any) -> None:
    """The gateway's retry may carry another date: the payment_id still makes it one payment."""
    order = make_order()
    payment_id = uuid.uuid4()
    send(client, order, "paid", payment_id=payment_id)
    note = send(
        client,
        order,
        "paid",
        payment_id=payment_id,
        date=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert note.outcome == "duplicate"
    assert Payment.objects.count() == 1


def test_paid_in_an_unexpected_currency_is_flagged(client: Client, make_order: Any) -> None:
    order = make_order(currency="USD", amount_int=1_250_000)
    send(client, order, "paid", amount_int=1_250_000, currency="EUR")
    assert status_of(order) == "awaiting_payment"
    assert flags(order) == ["amount_mismatch"]
    assert Payment.objects.get().currency == "EUR"


def test_a_receiver_that_raises_does_not_undo_the_payment(client: Client, make_order: Any) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the shop's receiver is broken")

    signals.order_paid.connect(broken)
    try:
        order = make_order()
        response = post_ipn(
            client,
            ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int),
        )
    finally:
        signals.order_paid.disconnect(broken)
    assert response.content == b"[OK]"
    assert status_of(order) == "paid"
