"""Each shop talks to the gateway with its own account: orders, quotes, IPNs, ledgers.

Against the sandbox gateway over real HTTP (a live server), each shop with a
sandbox merchant account of its own, registered as `sandbox_account_create`
and `shop_create` would: its orders are created with its key, the sandbox
signs their IPNs with its secret, and the ledger sweep reads each shop's
wallet history with its own account, from a checkpoint of its own.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from payments.exceptions import ShopUnconfigured
from payments.models import LedgerCheckpoint, Notification, Order, Payment, Shop
from payments.services.orders import NewOrder, order_create
from payments.services.runs import reconciliation_run
from payments.services.shops import shop_create
from payments.shops import shop_default
from sandbox.accounts import account_create
from sandbox.models import IpnDelivery, SandboxOrder
from sandbox.services import ipn_delivery_attempt, payment_pay

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _default_shop(transactional_db: None) -> Shop:
    """The default shop, as migrated (a flushed test database makes it again on first use)."""
    return shop_default()


def shop_with_account(name: str) -> Shop:
    """A shop and its sandbox merchant account (sandbox_account_create, then shop_create)."""
    account = account_create(login=name)
    return shop_create(name=name, gateway_key=account.api_key, gateway_secret=account.secret)


def new_order(shop: Shop, currency: str = "BTC", amount_int: int = 50_000_000) -> Order:
    new = NewOrder(reference=f"{shop.name}-1", amount_int=amount_int, currency=currency)
    order, created = order_create(new=new, shop=shop)
    assert created and order.status == "awaiting_payment", order.failure_reason
    return order


def pay_at_gateway(order: Order) -> IpnDelivery:
    """A gateway account holder pays; no worker runs, so the IPN waits to be delivered."""
    assert order.transaction is not None
    placed = SandboxOrder.objects.get(transaction=order.transaction)
    return IpnDelivery.objects.get(payment=payment_pay(order=placed, method="account"))


def test_each_shops_order_is_created_and_notified_with_its_own_account(
    live_gateway: str,
) -> None:
    shops = [shop_with_account("shop-a"), shop_with_account("shop-b")]
    orders = [new_order(shops[0], "EUR", 1_250_000), new_order(shops[1])]

    for shop, order in zip(shops, orders, strict=True):
        assert order.transaction is not None
        placed = SandboxOrder.objects.get(transaction=order.transaction)
        assert placed.account.api_key == shop.gateway_key
        assert ipn_delivery_attempt(delivery_id=pay_at_gateway(order).pk).result == "delivered"

    for shop, order in zip(shops, orders, strict=True):
        order.refresh_from_db()
        assert order.status == "paid"
        notification = Notification.objects.get(order=order)
        assert (notification.shop, notification.outcome) == (shop, "applied")
    assert orders[0].quote_btc_int is not None  # the quote, read with the shop's client


def test_the_ledger_sweep_reads_each_shops_ledger_with_its_own_account(
    live_gateway: str,
) -> None:
    shops = [shop_with_account("shop-a"), shop_with_account("shop-b")]
    orders = [new_order(shop) for shop in shops]
    for order in orders:
        pay_at_gateway(order)  # the notifications never come

    first = reconciliation_run(sweep="ledger")
    second = reconciliation_run(sweep="ledger")

    assert first.status == "done"
    assert first.counts["notification_missing"] == 2
    assert first.counts["shops"] == 3  # the default shop too (an empty ledger)
    assert second.counts.get("examined", 0) == 0  # each shop's checkpoint is past its entry
    for shop, order in zip(shops, orders, strict=True):
        order.refresh_from_db()
        assert order.status == "paid"
        assert Payment.objects.get(order=order).source == "reconciliation"
        assert LedgerCheckpoint.objects.get(shop=shop, currency="BTC").last_index == 1


def test_a_shop_whose_secret_cannot_be_read_is_skipped_and_the_others_reconciled(
    live_gateway: str, caplog: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("LOST_SHOP_SECRET", raising=False)
    shop_create(name="lost", gateway_key=uuid.uuid4(), gateway_secret_env="LOST_SHOP_SECRET")
    shop = shop_with_account("shop-a")
    order = new_order(shop)
    pay_at_gateway(order)

    with caplog.at_level(logging.ERROR, logger="payments.services.reconciliation"):
        run = reconciliation_run(sweep="ledger")

    assert run.status == "done"
    assert (run.counts["shops_skipped"], run.counts["shops"]) == (1, 2)  # default, A
    assert any("lost" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    order.refresh_from_db()
    assert order.status == "paid"


def test_a_shop_whose_key_the_gateway_refuses_does_not_hold_up_the_others(
    live_gateway: str, caplog: Any
) -> None:
    shop_create(name="unknown-at-gateway", gateway_key=uuid.uuid4(), gateway_secret="c2VjcmV0")
    shop = shop_with_account("shop-a")
    order = new_order(shop)
    pay_at_gateway(order)

    with caplog.at_level(logging.ERROR, logger="payments.services.reconciliation"):
        run = reconciliation_run(sweep="ledger")

    assert (run.status, run.counts["shops_skipped"], run.counts["shops"]) == ("done", 1, 2)
    assert any("unknown-at-gateway" in r.getMessage() for r in caplog.records)
    order.refresh_from_db()
    assert order.status == "paid"


def test_an_order_of_a_shop_whose_secret_cannot_be_read_writes_nothing(monkeypatch: Any) -> None:
    monkeypatch.delenv("LOST_SHOP_SECRET", raising=False)
    shop = shop_create(name="lost", gateway_key=uuid.uuid4(), gateway_secret_env="LOST_SHOP_SECRET")

    for currency in ("BTC", "EUR"):  # the quote, too, is read with the shop's client
        new = NewOrder(reference="r", amount_int=1_000, currency=currency)
        with pytest.raises(ShopUnconfigured):
            order_create(new=new, shop=shop)

    assert not Order.objects.exists()
