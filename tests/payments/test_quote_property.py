"""A property of fiat orders: paid only if the BTC received covers the quote, or a person said so.

Hypothesis draws sequences of signed notifications (paid, partial, cancelled,
closed; amounts around the quote; payments sent inside and after the quote's
window; repeats) and, now and then, a person accepting the order, and posts
them through the IPN endpoint as the gateway would. After every step: a paid
order either has an `accept_paid` resolution, or its paid BTC payments come to
at least the quote less the tolerance (with the confirmed part of those still
reported partial) and the payment that paid it was sent within the window.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from payments.exceptions import ResolutionRefused
from payments.models import Order, OrderResolution, Payment
from payments.services.resolutions import order_resolve
from payments.testing import ipn_body, post_ipn
from tests.factories import accepted_order

pytestmark = pytest.mark.django_db

TOLERANCE = Decimal("0.01")
WINDOW = 900
CURRENCIES = ("USD", "EUR", "JPY")


@st.composite
def steps(draw: st.DrawFn, due: int) -> list[dict[str, Any]]:
    """What happens to the order: notifications, repeats of one, a person accepting it."""
    payment_ids = [uuid.uuid4() for _ in range(3)]
    slack = int(Decimal(due) * TOLERANCE)
    near = [
        0,
        1,
        due // 2,
        due * 3 // 4,
        due - 2 * slack,
        due - slack - 1,
        due - slack,
        due,
        due * 2,
    ]
    amount = st.sampled_from(near) | st.integers(0, due * 3)
    drawn = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(
            st.sampled_from(["paid", "paid", "partial", "cancelled", "closed", "again", "accept"])
        )
        drawn.append(
            {
                "kind": kind,
                "payment_id": draw(st.sampled_from(payment_ids)),
                "amount": draw(amount),
                "pending": draw(amount),
                "valid": draw(amount),
                "consistent": draw(st.booleans()),
                "late": draw(st.booleans()),  # sent after the quote's window
            }
        )
    return drawn


def body_of(order: Order, step: dict[str, Any]) -> bytes:
    assert order.quoted_at is not None
    sent = order.quoted_at + timedelta(seconds=WINDOW + 60 if step["late"] else 30)
    pending, valid = step["pending"], step["valid"]
    return ipn_body(
        transaction=order.transaction,
        status=step["kind"],
        payment_id=step["payment_id"],
        amount_int=step["amount"],
        date=sent,
        amount_pending=pending,
        amount_valid=valid,
        amount_total=pending + valid + (0 if step["consistent"] else 1),
    )


def paid_by_the_rules(order: Order, late: set[uuid.UUID]) -> bool:
    """The BTC received covers the quote within the tolerance; the paying payment was in time.

    Received: paid payments, and the confirmed part of those still reported partial
    (the gateway credits bitcoins at 6 confirmations and reports only the payment
    that covers the order as paid).
    """
    assert order.quote_btc_int is not None
    received = sum(
        (p.amount_int if p.status == "paid" else p.amount_valid) or 0
        for p in Payment.objects.filter(order=order, status__in=("paid", "partial"))
        if p.status == "partial" or p.currency == "BTC"
    )
    slack = (Decimal(order.quote_btc_int) * TOLERANCE).to_integral_value(ROUND_FLOOR)
    reason = order.transitions.get(to_status="paid").reason
    match = re.fullmatch(r"IPN paid ([0-9a-f-]{36})", reason)
    assert match, reason
    return received >= order.quote_btc_int - int(slack) and uuid.UUID(match.group(1)) not in late


def test_a_fiat_order_is_paid_only_when_covered_or_accepted(settings: Any) -> None:
    settings.PAYMENTS_UNDERPAID_TOLERANCE = TOLERANCE
    settings.PAYMENTS_QUOTE_WINDOW = WINDOW
    client = Client()
    person = get_user_model().objects.create_user("reviewer", password="unused-password-123")

    @hypothesis_settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        currency = data.draw(st.sampled_from(CURRENCIES))
        order = accepted_order(currency=currency, amount_int=data.draw(st.integers(10**5, 10**9)))
        assert order.quote_btc_int is not None
        late: set[uuid.UUID] = set()  # payments whose money was sent after the window
        seen: set[uuid.UUID] = set()
        sent: list[bytes] = []
        for step in data.draw(steps(order.quote_btc_int)):
            if step["kind"] == "accept":
                with contextlib.suppress(ResolutionRefused):  # a state nobody accepts from
                    order_resolve(order_id=order.pk, action="accept_paid", user=person, reason="ok")
                continue
            if step["kind"] == "again":
                if not sent:
                    continue
                body = data.draw(st.sampled_from(sent))
            else:
                body = body_of(order, step)
                if step["payment_id"] not in seen and step["kind"] == "paid" and step["late"]:
                    late.add(step["payment_id"])
                seen.add(step["payment_id"])
                sent.append(body)
            response = post_ipn(client, body)
            assert response.content == b"[OK]"
            order.refresh_from_db()
            if order.status == "paid":
                accepted = OrderResolution.objects.filter(order=order, action="accept_paid")
                assert accepted.exists() or paid_by_the_rules(order, late), step

    run()
