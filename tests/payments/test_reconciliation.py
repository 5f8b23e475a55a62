"""Ledger reconciliation against the sandbox gateway over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from payments.gateway_factory import gateway_client
from payments.models import LedgerCheckpoint, Order, Payment
from payments.services.reconciliation import ledger_reconcile
from sandbox.models import IpnDelivery, SandboxOrder
from sandbox.services import ipn_delivery_attempt, payment_pay

pytestmark = pytest.mark.django_db(transaction=True)


def order_via_api(api_client: APIClient, **fields: Any) -> Order:
    body = {"reference": "r", "amount": "0.5", "currency": "BTC", **fields}
    response = api_client.post("/api/orders/", body, format="json")
    assert response.status_code == 201, response.content
    return Order.objects.get(pk=response.json()["id"])


def pay_at_gateway(order: Order, amount_btc_int: int) -> None:
    """The payer pays; no worker runs, so the IPN is never delivered on its own."""
    assert order.transaction is not None
    payment_pay(
        order=SandboxOrder.objects.get(transaction=order.transaction),
        method="account",
        amount_btc_int=amount_btc_int,
    )


def reconcile(**options: Any) -> Any:
    with gateway_client() as client:
        return ledger_reconcile(client=client, **options)


def test_a_payment_whose_notification_never_came_is_found(
    api_client: APIClient, live_gateway: str
) -> None:
    order = order_via_api(api_client)
    pay_at_gateway(order, 50_000_000)

    counts = reconcile()

    order.refresh_from_db()
    assert counts["notification_missing"] == 1
    assert order.status == "paid"
    payment = Payment.objects.get()
    assert (payment.amount_int, payment.currency, payment.source) == (
        50_000_000, "BTC", "reconciliation",
    )  # fmt: skip
    assert list(order.flags.values_list("kind", flat=True)) == ["notification_missing"]

    # The notification arrives after all: a duplicate, nothing counted twice.
    ipn_delivery_attempt(delivery_id=IpnDelivery.objects.get().pk)
    assert Payment.objects.count() == 1
    order.refresh_from_db()
    assert order.status == "paid" and order.transitions.count() == 2  # awaiting, paid


def test_matched_credits_change_nothing_and_the_checkpoint_advances(
    api_client: APIClient, live_gateway: str
) -> None:
    order = order_via_api(api_client)
    pay_at_gateway(order, 50_000_000)
    ipn_delivery_attempt(delivery_id=IpnDelivery.objects.get().pk)  # the IPN arrives

    first = reconcile()
    second = reconcile()

    assert first["matched"] == 1
    assert second["examined"] == 0  # the checkpoint is past that entry
    assert LedgerCheckpoint.objects.get(currency="BTC").last_index > 0
    assert not order.flags.exists()


def test_a_credit_that_differs_from_the_notification_is_flagged(
    api_client: APIClient, live_gateway: str
) -> None:
    order = order_via_api(api_client)
    pay_at_gateway(order, 50_000_000)
    ipn_delivery_attempt(delivery_id=IpnDelivery.objects.get().pk)
    Payment.objects.update(amount_int=49_000_000)  # the notification said something else

    counts = reconcile()

    assert counts["amount_mismatch"] == 1
    assert list(order.flags.values_list("kind", flat=True)) == ["amount_mismatch"]


def test_dry_run_finds_without_changing(api_client: APIClient, live_gateway: str) -> None:
    order = order_via_api(api_client)
    pay_at_gateway(order, 50_000_000)

    counts = reconcile(dry_run=True)

    order.refresh_from_db()
    assert counts["notification_missing"] == 1
    assert order.status == "awaiting_payment"
    assert not Payment.objects.exists()
    assert LedgerCheckpoint.objects.get(currency="BTC").last_index == 0
