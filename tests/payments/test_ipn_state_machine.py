"""Random sequences of the four statuses, duplicates and reorderings, through the IPN endpoint.

Whatever the gateway sends and in whatever order, a paid order never moves
backwards, a payment is never counted twice, every transition is one the
state table allows, and the order's paid total equals its payments.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db.models import Sum
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from payments.models import Order, Payment
from payments.states import can_transition
from payments.testing import ipn_body, post_ipn

DUE = 100_000_000  # 1 BTC
PAYMENTS = 3


class IpnSequence(RuleBasedStateMachine):
    """One order; up to three payments with fixed amounts; the gateway says anything."""

    def __init__(self) -> None:
        super().__init__()
        self.client = Client()
        self.order = Order.objects.create(
            reference="machine",
            amount_int=DUE,
            currency="BTC",
            transaction=uuid.uuid4(),
            status="awaiting_payment",
            multipay=bool(uuid.uuid4().int % 2),
        )
        self.payment_ids = [uuid.uuid4() for _ in range(PAYMENTS)]
        self.amounts = [DUE // 2, DUE, DUE * 2]
        self.sent: list[bytes] = []
        self.paid_payments: set[int] = set()
        self.recorded_payments: set[int] = set()
        self.was_paid = False

    def post(self, body: bytes) -> None:
        response = post_ipn(self.client, body)
        assert response.status_code == 200 and response.content == b"[OK]"

    @rule(
        status=st.sampled_from(["paid", "partial", "cancelled", "closed"]),
        which=st.integers(0, PAYMENTS - 1),
        confirmed=st.integers(0, DUE),
    )
    def deliver(self, status: str, which: int, confirmed: int) -> None:
        body = ipn_body(
            transaction=self.order.transaction,
            payment_id=self.payment_ids[which],
            status=status,
            amount_int=self.amounts[which],
            amount_valid=confirmed,
            amount_pending=self.amounts[which] - min(confirmed, self.amounts[which]),
        )
        self.sent.append(body)
        self.post(body)
        if status == "paid":
            self.paid_payments.add(which)
        if status != "closed":
            self.recorded_payments.add(which)

    @rule(data=st.data())
    def deliver_again(self, data: Any) -> None:
        if self.sent:
            self.post(data.draw(st.sampled_from(self.sent)))

    @invariant()
    def paid_never_moves_backwards(self) -> None:
        self.order.refresh_from_db()
        if self.was_paid:
            assert self.order.status == "paid"
        self.was_paid = self.order.status == "paid"

    @invariant()
    def each_payment_is_counted_once(self) -> None:
        rows = Payment.objects.filter(order=self.order)
        assert rows.count() == len(self.recorded_payments)
        paid_total = rows.filter(status="paid").aggregate(total=Sum("amount_int"))["total"] or 0
        assert paid_total == sum(self.amounts[i] for i in self.paid_payments)

    @invariant()
    def every_transition_is_allowed(self) -> None:
        chain = list(self.order.transitions.order_by("created", "id"))
        previous = "awaiting_payment"
        for step in chain:
            assert step.from_status == previous
            assert can_transition(step.from_status, step.to_status)
            previous = step.to_status
        assert previous == Order.objects.get(pk=self.order.pk).status


@pytest.mark.django_db
def test_random_notification_sequences_keep_orders_consistent() -> None:
    run_state_machine_as_test(
        IpnSequence,
        settings=settings(
            max_examples=60,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
