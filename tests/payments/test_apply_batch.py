"""A chunk of notifications applied as one batch (payments.services.apply_batch): what the
decisions in hand must see of each other, and what each shop event must show.

Each test stores its notifications pending and applies them as one chunk with the
sweep's code (the worker's), then checks the database.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from payments.models import Notification, Order, Payment, ShopEvent
from payments.services.sweeps import notifications_apply_pending
from payments.services.webhook_endpoints import webhook_endpoint_create
from payments.testing import ipn_body
from tests.payments.test_ipn_shops import new_shop

pytestmark = pytest.mark.django_db


def _apply_as_one_chunk(*bodies: bytes, shop: Any = None) -> list[Notification]:
    stored = [
        Notification.objects.create(
            body=body, body_sha256=uuid.uuid4().hex * 2, **({"shop": shop} if shop else {})
        )
        for body in bodies
    ]
    counts = notifications_apply_pending(older_than_seconds=0, chunk_size=len(bodies))
    assert counts["examined"] == len(bodies)
    return [Notification.objects.get(pk=notification.pk) for notification in stored]


def test_one_orders_partial_then_paid_each_leave_their_event(make_order: Any) -> None:
    """The paid one is decided after the partial one is written: its payment is updated,
    not made twice, and each event shows the order as its notification left it."""
    order = make_order()
    webhook_endpoint_create(shop=order.shop, url="http://127.0.0.1:9/events")
    payment = uuid.uuid4()
    partial, paid = _apply_as_one_chunk(
        ipn_body(transaction=order.transaction, status="partial", payment_id=payment,
                 amount_pending=order.amount_int, amount_total=order.amount_int),
        ipn_body(transaction=order.transaction, status="paid", payment_id=payment,
                 amount_int=order.amount_int),
    )  # fmt: skip

    assert (partial.outcome, paid.outcome) == ("applied", "applied")
    [recorded] = Payment.objects.filter(order=order)
    assert (recorded.payment_id, recorded.status, recorded.amount_int) == (
        payment, "paid", order.amount_int,
    )  # fmt: skip
    events = ShopEvent.objects.filter(order=order).order_by("created", "pk")
    shown = [
        (
            event.type,
            event.payload["data"]["order"]["status"],
            [p["status"] for p in event.payload["data"]["order"]["payments"]],
        )
        for event in events
    ]
    assert shown == [
        ("order.confirming", "confirming", ["partial"]),
        ("order.paid", "paid", ["paid"]),
    ]


def test_the_same_payment_twice_in_a_chunk_is_recorded_once(make_order: Any) -> None:
    """Two bodies of one payment (the gateway's resend with another date): one payment,
    one transition, the second a duplicate."""
    order = make_order()
    payment = uuid.uuid4()
    first, second = _apply_as_one_chunk(
        *(
            ipn_body(transaction=order.transaction, status="paid", payment_id=payment,
                     amount_int=order.amount_int, method=method)
            for method in ("MTGOXBTC", "BTC")
        )
    )  # fmt: skip

    assert (first.outcome, second.outcome) == ("applied", "duplicate")
    assert Payment.objects.filter(payment_id=payment).count() == 1
    assert list(order.transitions.values_list("to_status", flat=True)) == ["paid"]


def test_a_payment_id_of_another_order_in_the_same_chunk_is_flagged(make_order: Any) -> None:
    """The chunk's first notification makes the payment for order X; the second names it
    for order Y: flagged on Y, X's payment untouched, Y not paid."""
    x, y = make_order(), make_order()
    payment = uuid.uuid4()
    for_x, for_y = _apply_as_one_chunk(
        ipn_body(transaction=x.transaction, status="paid", payment_id=payment,
                 amount_int=x.amount_int),
        ipn_body(transaction=y.transaction, status="paid", payment_id=payment,
                 amount_int=y.amount_int),
    )  # fmt: skip

    assert for_x.outcome == "applied"
    assert (for_y.outcome, for_y.detail) == ("flagged", "payment id of another order")
    assert Payment.objects.get(payment_id=payment).order_id == x.pk
    y.refresh_from_db()
    assert y.status == "awaiting_payment"
    assert list(y.flags.values_list("kind", flat=True)) == ["unexpected_notification"]


def test_a_chunk_of_two_shops_applies_each_to_its_own_orders_only(make_order: Any) -> None:
    """A notification signed by shop A naming shop B's order is flagged on A's side, with no
    order; B's own notification in the same chunk pays B's order."""
    shop_a, shop_b = new_shop("shop-a"), new_shop("shop-b")
    order_b = make_order(shop=shop_b)
    from_b = ipn_body(transaction=order_b.transaction, status="paid", amount_int=order_b.amount_int)
    forged = ipn_body(transaction=order_b.transaction, status="paid", amount_int=1)
    stored_a = Notification.objects.create(body=forged, body_sha256="a" * 64, shop=shop_a)
    stored_b = Notification.objects.create(body=from_b, body_sha256="b" * 64, shop=shop_b)

    notifications_apply_pending(older_than_seconds=0, chunk_size=2)

    stored_a.refresh_from_db()
    stored_b.refresh_from_db()
    assert (stored_a.outcome, stored_a.order_id) == ("flagged", None)
    assert (stored_b.outcome, stored_b.order_id) == ("applied", order_b.pk)
    order_b.refresh_from_db()
    assert order_b.status == "paid"
    assert [p.amount_int for p in Payment.objects.filter(order=order_b)] == [order_b.amount_int]


def test_a_short_payment_in_a_chunk_leaves_its_order_open_and_the_others_paid(
    make_order: Any,
) -> None:
    """Each notification's coverage is its own: a short one is flagged, never applied."""
    short, full = make_order(), make_order()
    flagged, applied = _apply_as_one_chunk(
        ipn_body(transaction=short.transaction, status="paid", amount_int=short.amount_int - 1),
        ipn_body(transaction=full.transaction, status="paid", amount_int=full.amount_int),
    )

    assert (flagged.outcome, applied.outcome) == ("flagged", "applied")
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses == {short.pk: "awaiting_payment", full.pk: "paid"}
