"""order_transition: the one function that changes a status, with or without a held lock."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from payments.exceptions import InvalidTransition
from payments.models import Order, OrderTransition
from payments.services import order_transition
from payments.services.orders import orders_transition


def test_a_transition_records_where_the_order_came_from(make_order: Any) -> None:
    order = make_order()

    moved = order_transition(order_id=order.pk, to="paid", reason="test")

    assert moved.status == "paid"
    assert Order.objects.get(pk=order.pk).status == "paid"
    record = OrderTransition.objects.get(order=order)
    assert (record.from_status, record.to_status, record.reason) == (
        "awaiting_payment",
        "paid",
        "test",
    )


def test_a_row_the_caller_holds_locked_moves_the_same_way(make_order: Any) -> None:
    order = make_order()

    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        order_transition(order_id=order.pk, to="confirming", reason="held", locked=locked)

    assert Order.objects.get(pk=order.pk).status == "confirming"
    assert locked.status == "confirming"
    assert OrderTransition.objects.get(order=order).from_status == "awaiting_payment"


def test_a_refused_transition_with_a_held_lock_leaves_the_callers_transaction_usable(
    make_order: Any,
) -> None:
    order = make_order(status="paid")

    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        with pytest.raises(InvalidTransition):
            order_transition(order_id=order.pk, to="cancelled", reason="late", locked=locked)
        Order.objects.filter(pk=order.pk).update(failure_reason="still writable")

    assert Order.objects.get(pk=order.pk).failure_reason == "still writable"
    assert not OrderTransition.objects.exists()


@pytest.mark.django_db(transaction=True)  # no test-wide transaction around it
def test_a_locked_row_outside_a_transaction_is_refused(make_order: Any) -> None:
    order = make_order()

    with pytest.raises(ValueError, match="locked in the caller's transaction"):
        order_transition(order_id=order.pk, to="paid", reason="x", locked=order)
    assert Order.objects.get(pk=order.pk).status == "awaiting_payment"


def test_many_orders_moved_at_once_each_get_their_transition(make_order: Any) -> None:
    orders = [make_order() for _ in range(250)]
    ids = [order.pk for order in orders]
    names = ("order", "from_status", "to_status", "reason", "created")
    # As many rows per INSERT as the database takes parameters (SQLite: 999 in all).
    per_insert = connection.ops.bulk_batch_size(
        [OrderTransition._meta.get_field(name) for name in names], ids
    )

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        moved = orders_transition(
            order_ids=ids, expected_from="awaiting_payment", to="cancelled", reason="sweep"
        )

    assert sorted(moved) == sorted(ids)
    inserts = [q for q in queries if q["sql"].startswith('INSERT INTO "payments_ordertransition"')]
    assert len(inserts) == -(-len(ids) // per_insert)
    recorded = OrderTransition.objects.filter(to_status="cancelled", reason="sweep")
    assert sorted(recorded.values_list("order_id", flat=True)) == sorted(ids)
