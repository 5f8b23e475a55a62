"""Money safety over real HTTP: a fiat order is quoted, and paid only when the BTC covers it.

The service and the sandbox gateway run on pytest-django's live server; orders
are created through the API (which reads the sandbox's ticker for the quote)
and notifications are POSTed signed, as the gateway sends them, over sockets.
Nothing is mocked but, in one test, a gateway whose ticker is down.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from payments import money
from payments.gateway_factory import gateway_client
from payments.models import (
    Notification,
    Order,
    OrderFlag,
    OrderResolution,
    Payment,
    ShopEvent,
    ShopMembership,
)
from payments.services.reconciliation import ledger_reconcile
from payments.testing import ipn_body, post_ipn_http
from sandbox import currencies
from sandbox.accounts import ensure_configured_account
from sandbox.models import IpnDelivery, SandboxPayment
from sandbox.services import ipn_delivery_attempt
from tests.factories import api_token_key
from tests.faults.fake_gateway import CREATED, FakeGateway, Step

pytestmark = pytest.mark.django_db(transaction=True)

# One order per currency kind: 5 decimals, 3 decimals (JPY), and another 5-decimal one.
PRICES = [("USD", "1.00"), ("EUR", "12.50"), ("JPY", "1500")]


class Shop:
    """A shop backend talking to the service over HTTP with its API token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def create(self, currency: str, amount: str, **fields: Any) -> dict[str, Any]:
        body = {"reference": f"r-{uuid.uuid4().hex[:8]}", "amount": amount, "currency": currency}
        response = self.session.post(
            f"{self.base_url}/api/orders/", json={**body, **fields}, timeout=30
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, order_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self.base_url}/api/orders/{order_id}/", timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def pay(self, order: dict[str, Any], amount_int: int | None, **fields: Any) -> None:
        """The gateway's signed `paid` notification for `amount_int` BTC (None: no amount)."""
        body = ipn_body(
            transaction=order["transaction"], status="paid", amount_int=amount_int or 0, **fields
        )
        if amount_int is None:
            body = b"&".join(p for p in body.split(b"&") if not p.startswith(b"amount="))
        self.notify(body)

    def notify(self, body: bytes) -> None:
        response = post_ipn_http(self.base_url, body)
        assert (response.status_code, response.content) == (200, b"[OK]")


@pytest.fixture
def shop(live_gateway: str, settings: Any) -> Shop:
    """The service and the sandbox on one live server, a shop's token, a 1 % tolerance."""
    settings.PAYMENTS_UNDERPAID_TOLERANCE = Decimal("0.01")
    ensure_configured_account()
    return Shop(live_gateway, api_token_key(name="shop"))


def order_row(order: dict[str, Any]) -> Order:
    return Order.objects.get(pk=order["id"])


def open_flags(order: dict[str, Any]) -> list[str]:
    return sorted(
        OrderFlag.objects.filter(order_id=order["id"], reviewed_at__isnull=True).values_list(
            "kind", flat=True
        )
    )


def quoted_btc(order: dict[str, Any]) -> int:
    return int(order["quote"]["btc_amount_int"])


# --- the quote ----------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "amount"), PRICES)
def test_a_fiat_order_is_quoted_from_the_gateways_ticker(
    shop: Shop, currency: str, amount: str
) -> None:
    order = shop.create(currency, amount)

    rate = currencies.rate_int(currency)  # the sandbox's ticker `last`
    amount_int = money.to_int(amount, currency)
    expected = -(-amount_int * 10**8 // rate)  # rounded up to a satoshi
    assert order["quote"]["rate_int"] == rate
    assert order["quote"]["btc_amount_int"] == expected
    assert order["quote"]["btc_amount"] == format(money.to_decimal(expected, "BTC"), "f")
    assert shop.get(order["id"])["quote"] == order["quote"]
    page = requests.get(order["checkout_url"], timeout=30).text
    assert f"about {money.display(expected, 'BTC')}" in page
    assert money.display(amount_int, currency) in page


def test_a_btc_order_needs_no_quote(shop: Shop) -> None:
    order = shop.create("BTC", "0.5")
    assert order["quote"] is None and order["flags"] == []


@pytest.fixture
def ticker_down(settings: Any) -> Iterator[FakeGateway]:
    """A gateway whose ticker answers 503 and that accepts every order/create."""
    fake = FakeGateway([CREATED], ticker=Step(503)).start()
    settings.GATEWAY_API_URL = fake.url
    yield fake
    fake.stop()


def test_a_ticker_failure_creates_the_order_without_a_quote_flagged_and_never_paid(
    shop: Shop, ticker_down: FakeGateway
) -> None:
    order = shop.create("USD", "1.00")

    assert order["status"] == "awaiting_payment" and order["quote"] is None
    assert [flag["kind"] for flag in order["flags"]] == ["quote_missing"]
    assert ticker_down.ticker_requests == ["/api/1/BTCUSD/ticker"]
    assert ticker_down.order_creations() == 1
    shop.pay(order, 10**8)  # a whole bitcoin: nothing to check it against, so a person does
    assert order_row(order).status == "awaiting_payment"
    payment_flag = OrderFlag.objects.filter(order_id=order["id"]).latest("id")
    assert (payment_flag.kind, open_flags(order)) == ("quote_missing", ["quote_missing"] * 2)
    assert "paid 1.00 BTC" in payment_flag.detail
    assert Payment.objects.get(order_id=order["id"]).status == "paid"  # the money is recorded


# --- `paid` checked against the quote ------------------------------------------------------


@pytest.mark.parametrize(("currency", "amount"), PRICES)
def test_one_satoshi_does_not_pay_a_fiat_order(shop: Shop, currency: str, amount: str) -> None:
    order = shop.create(currency, amount)
    shop.pay(order, 1)

    assert order_row(order).status == "awaiting_payment"
    assert open_flags(order) == ["underpaid"]
    short = money.display(quoted_btc(order) - 1, "BTC")
    assert short in OrderFlag.objects.get(order_id=order["id"]).detail  # the shortfall, named


@pytest.mark.parametrize(("currency", "amount"), PRICES)
@pytest.mark.parametrize("amount_int", [0, None], ids=["zero", "missing"])
def test_a_paid_notification_without_an_amount_is_invalid(
    shop: Shop, currency: str, amount: str, amount_int: int | None
) -> None:
    order = shop.create(currency, amount)
    shop.pay(order, amount_int)

    assert order_row(order).status == "awaiting_payment"
    assert not Payment.objects.filter(order_id=order["id"]).exists()
    note = Notification.objects.get()
    assert note.outcome == "invalid" and note.needs_review
    if amount_int == 0:  # readable enough to name its order
        assert open_flags(order) == ["invalid_notification"]


@pytest.mark.parametrize(
    ("paid_per_mille", "status", "flags"),
    [
        (1000, "paid", []),  # exactly the quote
        (995, "paid", []),  # short, within the 1 % tolerance
        (1005, "paid", []),  # over, within it
        (985, "awaiting_payment", ["underpaid"]),  # short beyond it
        (1500, "paid", ["overpaid"]),  # over beyond it
    ],
)
@pytest.mark.parametrize(("currency", "amount"), PRICES)
def test_paid_is_checked_against_the_quote_with_the_tolerance(
    shop: Shop,
    currency: str,
    amount: str,
    paid_per_mille: int,
    status: str,
    flags: list[str],
) -> None:
    order = shop.create(currency, amount)
    shop.pay(order, quoted_btc(order) * paid_per_mille // 1000)

    assert order_row(order).status == status
    assert open_flags(order) == flags


def test_several_payments_on_a_multipay_order_add_up(shop: Shop) -> None:
    order = shop.create("EUR", "12.50", multipay=True)
    due = quoted_btc(order)

    shop.pay(order, due // 2)
    assert order_row(order).status == "awaiting_payment"
    assert open_flags(order) == ["underpaid"]
    shop.pay(order, due - due // 2)
    assert order_row(order).status == "paid"
    amounts = Payment.objects.filter(order_id=order["id"]).values_list("amount_int", flat=True)
    assert sum(amount or 0 for amount in amounts) == due


def test_money_sent_after_the_quotes_window_is_left_to_a_person(shop: Shop, settings: Any) -> None:
    settings.PAYMENTS_QUOTE_WINDOW = 600
    order = shop.create("USD", "1.00")
    Order.objects.filter(pk=order["id"]).update(quoted_at=timezone.now() - timedelta(seconds=601))

    shop.pay(order, quoted_btc(order))  # the quoted amount, but the rate may have moved since

    assert order_row(order).status == "awaiting_payment"
    assert open_flags(order) == ["quote_expired"]


def test_money_sent_within_the_window_but_confirmed_after_it_pays(
    shop: Shop, settings: Any
) -> None:
    settings.PAYMENTS_QUOTE_WINDOW = 600
    order = shop.create("USD", "1.00")
    payment_id = uuid.uuid4()
    due = quoted_btc(order)
    shop.notify(
        ipn_body(
            transaction=order["transaction"],
            status="partial",
            payment_id=payment_id,
            amount_pending=due,
        )
    )
    assert order_row(order).status == "confirming"
    Order.objects.filter(pk=order["id"]).update(quoted_at=timezone.now() - timedelta(seconds=900))
    Payment.objects.filter(payment_id=payment_id).update(
        created=timezone.now() - timedelta(seconds=600)
    )  # sent 5 minutes after the quote, confirmed 10 minutes later

    shop.pay(order, due, payment_id=payment_id)

    assert order_row(order).status == "paid"
    assert open_flags(order) == []


# --- `partial` notifications ----------------------------------------------------------------


@pytest.mark.parametrize(("valid", "pending", "total"), [(10, 10, 30), (10, 10, 0), (0, 5, 4)])
def test_partial_figures_that_do_not_add_up_are_invalid(
    shop: Shop, valid: int, pending: int, total: int
) -> None:
    order = shop.create("USD", "1.00")
    shop.notify(
        ipn_body(
            transaction=order["transaction"],
            status="partial",
            amount_valid=valid,
            amount_pending=pending,
            amount_total=total,
        )
    )

    assert order_row(order).status == "awaiting_payment"
    assert not Payment.objects.filter(order_id=order["id"]).exists()
    assert Notification.objects.get().outcome == "invalid"
    assert open_flags(order) == ["invalid_notification"]


def test_partial_bitcoins_short_of_the_quote_do_not_make_the_order_confirming(
    shop: Shop,
) -> None:
    order = shop.create("JPY", "1500")
    shop.notify(ipn_body(transaction=order["transaction"], status="partial", amount_pending=1_000))

    assert order_row(order).status == "awaiting_payment"
    assert open_flags(order) == ["underpaid"]
    assert Payment.objects.get(order_id=order["id"]).status == "partial"  # the figures are kept


def test_partial_bitcoins_covering_the_quote_make_the_order_confirming(shop: Shop) -> None:
    order = shop.create("JPY", "1500")
    shop.notify(
        ipn_body(
            transaction=order["transaction"], status="partial", amount_pending=quoted_btc(order)
        )
    )

    assert order_row(order).status == "confirming"
    assert open_flags(order) == []


# --- as a payer would: the sandbox's page, its notifications, the ledger --------------------


def deliver_ipns() -> list[str]:
    """Send the sandbox's queued notifications now (what its Celery task does), over HTTP."""
    results: list[str] = []
    for delivery in IpnDelivery.objects.filter(delivered_at__isnull=True).order_by("id"):
        results.append(ipn_delivery_attempt(delivery_id=delivery.pk).result)
    return results


def submit(session: requests.Session, page_url: str, action: str, fields: dict[str, str]) -> Any:
    """Submit a form of the sandbox's page as a browser without JavaScript would."""
    page = session.get(page_url, timeout=30).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, page
    return session.post(
        action,
        data={**fields, "csrfmiddlewaretoken": token.group(1)},
        allow_redirects=False,
        timeout=30,
    )


def test_one_satoshi_sent_on_the_sandboxs_page_leaves_a_usd_order_open_and_the_ledger_short(
    shop: Shop,
) -> None:
    order = shop.create("USD", "1.00")
    pay_url = order["payment_url"]
    payer = requests.Session()
    sent = submit(
        payer,
        pay_url,
        f"{pay_url}/pay",
        {"method": "bitcoin", "amount_choice": "custom", "amount_btc": "0.00000001"},
    )
    assert sent.status_code == 303
    payment = SandboxPayment.objects.get()
    confirmed = submit(payer, pay_url, f"{pay_url}/confirm/{payment.payment_id}", {})
    assert confirmed.status_code == 303

    assert deliver_ipns() == ["delivered", "delivered"]  # partial, then partial confirmed
    assert IpnDelivery.objects.filter(status="paid").count() == 0  # the gateway's rule
    assert order_row(order).status == "awaiting_payment"
    assert open_flags(order) == ["underpaid"]

    with gateway_client() as client:
        counts = ledger_reconcile(client=client)
    assert (counts["examined"], counts["matched"], counts["underpaid"]) == (1, 0, 1)
    assert order_row(order).status == "awaiting_payment"  # the credit is recorded, still short
    assert Payment.objects.get(order_id=order["id"]).status == "paid"


def test_bitcoins_confirmed_short_and_the_rest_paid_by_account_pay_the_order(shop: Shop) -> None:
    """The gateway reports the confirmed half `partial` and only the covering payment `paid`:
    the confirmed bitcoins of the first count towards the quote."""
    order = shop.create("EUR", "12.50")
    pay_url = order["payment_url"]
    payer = requests.Session()
    too_little = {"method": "bitcoin", "amount_choice": "less"}
    assert submit(payer, pay_url, f"{pay_url}/pay", too_little).status_code == 303
    first = SandboxPayment.objects.get()
    assert submit(payer, pay_url, f"{pay_url}/confirm/{first.payment_id}", {}).status_code == 303
    deliver_ipns()
    assert order_row(order).status == "awaiting_payment"

    assert submit(payer, pay_url, f"{pay_url}/pay", {"method": "account"}).status_code == 303
    assert deliver_ipns() == ["delivered"]  # `paid`, for the rest only

    assert order_row(order).status == "paid"
    assert "overpaid" not in open_flags(order)
    paid = IpnDelivery.objects.get(status="paid")
    assert f"amount={quoted_btc(order) - quoted_btc(order) // 2}&" in paid.body


# --- a person resolves it: the admin over HTTP -------------------------------------------------


def staff_session(base_url: str, name: str, group: str, shop_id: int) -> requests.Session:
    """A staff member of `group` working for the shop, logged in through the admin's own
    login form."""
    call_command("create_review_roles", stdout=StringIO())
    user = get_user_model().objects.create_user(name, password="staff-password-123", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    ShopMembership.objects.create(shop_id=shop_id, user=user)
    session = requests.Session()
    login = f"{base_url}/admin/login/"
    fields = {"username": name, "password": "staff-password-123", "next": "/admin/"}
    assert submit(session, login, login, fields).status_code == 302
    return session


def test_a_reviewer_accepts_an_underpaid_order_with_a_reason_over_http(
    shop: Shop, settings: Any
) -> None:
    settings.SHOP_WEBHOOK_URL = "http://127.0.0.1:9/shop/events"  # events recorded, not sent
    settings.SHOP_WEBHOOK_SECRET = "shop-events-secret-0123456789"
    order = shop.create("USD", "1.00")
    shop.pay(order, quoted_btc(order) // 2)
    resolve = f"{shop.base_url}/admin/payments/order/{order['id']}/resolve/"
    decision = {"action": "accept_paid", "reason": "the payer sent the rest by bank transfer"}

    viewer = staff_session(shop.base_url, "victor", "Payments viewers", order_row(order).shop.pk)
    assert viewer.post(resolve, data=decision, timeout=30).status_code == 403
    assert order_row(order).status == "awaiting_payment"

    reviewer = staff_session(shop.base_url, "rita", "Payments reviewers", order_row(order).shop.pk)
    assert submit(reviewer, resolve, resolve, decision).status_code == 302

    assert order_row(order).status == "paid"
    resolution = OrderResolution.objects.get(order_id=order["id"])
    assert (resolution.action, resolution.user_name) == ("accept_paid", "rita")
    assert resolution.reason == decision["reason"]
    event = ShopEvent.objects.get(order_id=order["id"], type="order.resolved")
    assert event.payload["data"]["resolution"]["reason"] == decision["reason"]
    assert ShopEvent.objects.filter(order_id=order["id"], type="order.paid").exists()
