"""POST /payments/ipn/ with several shops: the Rest-Key names the shop, its secret verifies,
and a notification touches that shop's orders and payments only.

Through the real endpoint (the Django test client), each shop with its own
gateway account (a sealed secret, as `shop_create` stores it).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from payments.gateway.signing import new_secret
from payments.models import (
    Notification,
    Order,
    Payment,
    RejectedNotification,
    Shop,
    ShopEvent,
)
from payments.services.shops import shop_create, shop_disable
from payments.services.webhook_endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_settings_in_step,
)
from payments.shops import shop_default, shop_gateway_credentials
from payments.testing import ipn_body, post_ipn
from tests.factories import accepted_order

pytestmark = pytest.mark.django_db


def new_shop(name: str, **fields: Any) -> Shop:
    return shop_create(name=name, gateway_key=uuid.uuid4(), gateway_secret=new_secret(), **fields)


@pytest.fixture
def shop_a() -> Shop:
    return new_shop("shop-a")


@pytest.fixture
def shop_b() -> Shop:
    return new_shop("shop-b")


def paid_body(order: Order, **extra: Any) -> bytes:
    assert order.transaction is not None
    return ipn_body(
        transaction=order.transaction, status="paid", amount_int=order.amount_int, **extra
    )


def test_each_shops_notification_pays_its_own_order(
    client: Client, shop_a: Shop, shop_b: Shop
) -> None:
    order_a, order_b = accepted_order(shop=shop_a), accepted_order(shop=shop_b)

    answer_a = post_ipn(client, paid_body(order_a), shop=shop_a)
    answer_b = post_ipn(client, paid_body(order_b), shop=shop_b)

    assert answer_a.content == answer_b.content == b"[OK]"
    for shop, order in ((shop_a, order_a), (shop_b, order_b)):
        order.refresh_from_db()
        assert order.status == "paid"
        stored = Notification.objects.get(order=order)
        assert (stored.shop, stored.outcome) == (shop, "applied")
        assert Payment.objects.get(order=order).amount_int == order.amount_int


def test_a_shops_key_on_another_shops_transaction_changes_nothing_and_is_flagged(
    client: Client, shop_a: Shop, shop_b: Shop
) -> None:
    order_b = accepted_order(shop=shop_b)

    answer = post_ipn(client, paid_body(order_b), shop=shop_a)  # A's key, A's signature

    assert answer.status_code == 200 and answer.content == b"[OK]"  # authentic: not re-sent
    order_b.refresh_from_db()
    assert order_b.status == "awaiting_payment"
    assert not Payment.objects.exists()
    assert not order_b.transitions.exists() and not order_b.flags.exists()
    stored = Notification.objects.get()
    assert stored.shop == shop_a
    assert (stored.outcome, stored.needs_review) == ("flagged", True)
    assert stored.order is None  # A's staff never see B's order
    assert "belongs to another shop" in stored.detail
    assert stored.transaction == order_b.transaction


def test_a_shops_key_with_another_shops_secret_is_403(
    client: Client, shop_a: Shop, shop_b: Shop
) -> None:
    order_a = accepted_order(shop=shop_a)
    secret_b = shop_gateway_credentials(shop=shop_b).api_secret

    answer = post_ipn(
        client, paid_body(order_a), api_key=str(shop_a.gateway_key), api_secret=secret_b
    )

    assert answer.status_code == 403
    assert not Notification.objects.exists()
    assert RejectedNotification.objects.get().reason == "bad_signature"
    order_a.refresh_from_db()
    assert order_a.status == "awaiting_payment"


def test_an_unknown_key_is_403(client: Client, shop_a: Shop) -> None:
    order_a = accepted_order(shop=shop_a)
    secret_a = shop_gateway_credentials(shop=shop_a).api_secret

    answer = post_ipn(client, paid_body(order_a), api_key=str(uuid.uuid4()), api_secret=secret_a)

    assert answer.status_code == 403
    assert not Notification.objects.exists()
    assert RejectedNotification.objects.get().reason == "unknown_key"


def test_a_disabled_shops_notification_is_still_stored_and_applied(
    client: Client, shop_b: Shop
) -> None:
    order_b = accepted_order(shop=shop_b)
    shop_disable(shop=shop_b)

    answer = post_ipn(client, paid_body(order_b), shop=Shop.objects.get(pk=shop_b.pk))

    assert answer.content == b"[OK]"  # the payer's money must not be lost
    order_b.refresh_from_db()
    assert order_b.status == "paid"
    assert Notification.objects.get().outcome == "applied"


def test_another_shops_payment_id_is_never_touched(
    client: Client, shop_a: Shop, shop_b: Shop
) -> None:
    order_a, order_b = accepted_order(shop=shop_a), accepted_order(shop=shop_b)
    partial_b = ipn_body(
        transaction=order_b.transaction, status="partial", amount_pending=order_b.amount_int
    )
    assert post_ipn(client, partial_b, shop=shop_b).content == b"[OK]"
    payment_b = Payment.objects.get(order=order_b)

    # A's own order, naming B's payment id: paid, cancelled.
    for status in ("paid", "cancelled"):
        body = ipn_body(
            transaction=order_a.transaction,
            status=status,
            payment_id=payment_b.payment_id,
            amount_int=order_a.amount_int,
        )
        assert post_ipn(client, body, shop=shop_a).content == b"[OK]"

    assert Payment.objects.get() == payment_b
    payment_b.refresh_from_db()
    assert (payment_b.order_id, payment_b.status) == (order_b.pk, "partial")
    assert payment_b.amount_pending == order_b.amount_int and payment_b.amount_int is None
    order_a.refresh_from_db()
    order_b.refresh_from_db()
    assert (order_a.status, order_b.status) == ("awaiting_payment", "confirming")
    assert {flag.detail for flag in order_a.flags.all()} == {"payment id of another order"}


def test_the_same_body_as_another_shops_notification_is_refused(
    client: Client, shop_a: Shop, shop_b: Shop
) -> None:
    order_b = accepted_order(shop=shop_b)
    body = paid_body(order_b)
    assert post_ipn(client, body, shop=shop_b).content == b"[OK]"

    replayed = post_ipn(client, body, shop=shop_a)  # byte for byte, signed with A's key

    assert replayed.status_code == 403
    stored = Notification.objects.get()
    assert (stored.shop, stored.times_received, stored.outcome) == (shop_b, 1, "applied")
    assert RejectedNotification.objects.get().reason == "another_shop"


def test_a_shop_whose_secret_cannot_be_read_is_503_so_the_gateway_retries(
    client: Client, shop_a: Shop, monkeypatch: Any
) -> None:
    order_a = accepted_order(shop=shop_a)
    body = paid_body(order_a)
    secret_a = shop_gateway_credentials(shop=shop_a).api_secret
    monkeypatch.delenv("SHOP_A_SECRET", raising=False)
    Shop.objects.filter(pk=shop_a.pk).update(
        gateway_secret_sealed="", gateway_secret_env="SHOP_A_SECRET"
    )

    answer = post_ipn(client, body, api_key=str(shop_a.gateway_key), api_secret=secret_a)

    assert answer.status_code == 503
    assert not Notification.objects.exists()
    order_a.refresh_from_db()
    assert order_a.status == "awaiting_payment"


def test_the_shops_tolerance_decides_a_short_btc_payment_of_a_fiat_order(
    client: Client, settings: Any
) -> None:
    settings.PAYMENTS_UNDERPAID_TOLERANCE = Decimal("0.005")
    lenient = new_shop("lenient", underpaid_tolerance=Decimal("0.05"))
    outcomes = {}
    for shop in (lenient, shop_default()):
        order = accepted_order(shop=shop, currency="EUR", amount_int=1_250_000)
        assert order.quote_btc_int is not None
        short = ipn_body(
            transaction=order.transaction,
            status="paid",
            amount_int=order.quote_btc_int * 97 // 100,  # 3 % short
        )
        assert post_ipn(client, short, shop=shop).content == b"[OK]"
        order.refresh_from_db()
        outcomes[shop.name] = order.status
    assert outcomes == {"lenient": "paid", "default": "awaiting_payment"}


@pytest.mark.parametrize("default", [True, False], ids=["default shop", "another shop"])
def test_a_notification_of_a_shop_with_an_endpoint_records_its_event(
    client: Client, shop_a: Shop, default: bool
) -> None:
    """The key's lookup says the shop has an endpoint: the endpoints are read, the event made."""
    shop = shop_default() if default else shop_a
    endpoint, _secret = webhook_endpoint_create(shop=shop, url="http://127.0.0.1:9/events")
    order = accepted_order(shop=shop, currency="BTC")
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)

    assert post_ipn(client, body, shop=shop).content == b"[OK]"

    event = ShopEvent.objects.get(order=order, type="order.paid")
    assert [d.endpoint_id for d in event.deliveries.all()] == [endpoint.pk]


def test_a_shops_notification_takes_as_many_statements_as_the_default_shops(
    client: Client, shop_a: Shop, django_capture_on_commit_callbacks: Any
) -> None:
    """The key's lookup is the only read before the transaction; the shop is not read again."""
    with django_capture_on_commit_callbacks(execute=True):  # the settings' endpoint in step
        webhook_endpoint_settings_in_step()
    counted = {}
    for shop in (shop_default(), shop_a):
        for currency in ("BTC", "EUR"):
            order = accepted_order(shop=shop, currency=currency)
            body = ipn_body(
                transaction=order.transaction,
                status="paid",
                amount_int=order.quote_btc_int or order.amount_int,
            )
            with CaptureQueriesContext(connection) as queries:
                assert post_ipn(client, body, shop=shop).content == b"[OK]"
            order.refresh_from_db()
            assert order.status == "paid"
            counted[(shop.is_default, currency)] = [q["sql"].split()[0] for q in queries]
    assert counted[(False, "BTC")] == counted[(True, "BTC")]
    assert counted[(False, "EUR")] == counted[(True, "EUR")]
    # The shop of the key, by its unique index, and whether it has a webhook endpoint ...
    assert counted[(False, "BTC")][0] == "SELECT"
    # ... the order, locked, and its payments: no query of the endpoints for a shop that has none.
    assert sum(sql == "SELECT" for sql in counted[(False, "BTC")]) == 3
