"""The hosted payment page: plain HTML forms, no JavaScript; every action and its effects."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_plus

import pytest
from django.test import Client

from sandbox import services
from sandbox.exceptions import AlreadyPaid
from sandbox.models import IpnDelivery, LedgerEntry, SandboxAccount, SandboxOrder, SandboxPayment
from tests.sandbox.conftest import ORDER_FIELDS, make_order

pytestmark = pytest.mark.django_db

SUCCESS = ORDER_FIELDS["return_success"]
FAILURE = ORDER_FIELDS["return_failure"]


@pytest.fixture
def browser() -> Client:
    """A browser that must present the CSRF token from the page, as a real one would."""
    return Client(enforce_csrf_checks=True)


def page_url(order: SandboxOrder) -> str:
    return f"/sandbox/pay/{order.transaction}"


def submit(browser: Client, order: SandboxOrder, action: str, **fields: str) -> Any:
    """GET the page, take the form's CSRF token and POST the form, like a browser."""
    page = browser.get(page_url(order))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'action="{action}"' in html, f"no form posting to {action}"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    return browser.post(action, {"csrfmiddlewaretoken": token.group(1), **fields})


def pay(browser: Client, order: SandboxOrder, **fields: str) -> Any:
    return submit(browser, order, f"{page_url(order)}/pay", **fields)


def ipn_date(payment: SandboxPayment) -> str:
    assert payment.paid_at is not None
    return quote_plus(payment.paid_at.strftime("%Y-%m-%d %H:%M:%S"))


def only_delivery(payment: SandboxPayment) -> IpnDelivery:
    [delivery] = IpnDelivery.objects.filter(payment=payment)
    return delivery


def pay_forms(browser: Client, order: SandboxOrder) -> dict[str, str]:
    """The page's payment forms by their hidden `method`: {"account": html, "bitcoin": html}."""
    html = browser.get(page_url(order)).content.decode()
    forms = re.findall(r"<form\b.*?</form>", html, flags=re.DOTALL)
    found = {}
    for form in forms:
        method = re.search(r'<input type="hidden" name="method" value="(\w+)">', form)
        if method is not None:
            found[method.group(1)] = form
    return found


def test_the_page_renders_without_javascript(browser: Client, account: SandboxAccount) -> None:
    order = make_order(account, currency="USD", amount_int=1_250_000, description="")

    response = browser.get(page_url(order))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<script" not in html
    assert "Payment to sandbox-merchant" in html  # the default description
    assert "$12.50000" in html  # in the order's currency
    assert "1.00000000\u00a0BTC" in html  # at the sandbox rate of 12.5 USD/BTC
    assert html.count('name="csrfmiddlewaretoken"') == 3  # account, bitcoins, cancel
    assert 'name="method" value="bitcoin"' in html
    assert "No payment yet." in html


def test_the_account_form_asks_no_amount_and_names_the_one_it_pays(
    browser: Client, account: SandboxAccount
) -> None:
    order = make_order(account, amount_int=50_000_000)

    forms = pay_forms(browser, order)

    assert set(forms) == {"account", "bitcoin"}
    assert "amount_choice" not in forms["account"] and "amount_btc" not in forms["account"]
    assert "Pay 0.50000000\u00a0BTC with my gateway account" in forms["account"]
    assert "no amount to choose" in forms["account"]
    for choice in ("full", "less", "more", "custom"):
        assert f'name="amount_choice" value="{choice}"' in forms["bitcoin"]
    assert "Too little (half): 0.25000000\u00a0BTC" in forms["bitcoin"]
    assert "paid only once what was credited covers the price" in forms["bitcoin"]


def test_fiat_amounts_are_converted_rounding_up(
    browser: Client, account: SandboxAccount, settings
) -> None:
    settings.SANDBOX_RATES = {"USD": "3.00000"}
    order = make_order(account, currency="USD", amount_int=1_000_000)  # 10 USD

    assert order.amount_btc_int == 333_333_334
    assert "3.33333334\u00a0BTC" in browser.get(page_url(order)).content.decode()


def test_a_post_without_the_csrf_token_is_refused(account: SandboxAccount) -> None:
    order = make_order(account)
    response = Client(enforce_csrf_checks=True).post(f"{page_url(order)}/pay", {})

    assert response.status_code == 403
    assert not SandboxPayment.objects.exists()


def test_paying_in_full_with_an_account(
    browser: Client, account: SandboxAccount, django_capture_on_commit_callbacks
) -> None:
    order = make_order(account, amount_int=50_000_000)

    with django_capture_on_commit_callbacks() as callbacks:
        response = pay(browser, order, method="account")

    assert response.status_code == 303
    assert response["Location"] == SUCCESS
    payment = SandboxPayment.objects.get()
    assert (payment.status, payment.method, payment.amount_int) == ("paid", "account", 50_000_000)
    order.refresh_from_db()
    assert order.status == "paid"
    entry = LedgerEntry.objects.get()
    assert (entry.type, entry.currency, entry.value_int, entry.balance_int, entry.index) == (
        "in",
        "BTC",
        50_000_000,
        50_000_000,
        1,
    )
    assert (entry.payment, entry.transaction) == (payment, order.transaction)
    delivery = only_delivery(payment)
    assert delivery.body == (
        f"id={order.transaction}&payment_id={payment.payment_id}&status=paid"
        f"&amount=50000000&currency=BTC&method=MTGOXBTC&date={ipn_date(payment)}&data=order-42"
    )
    assert (delivery.url, delivery.status, delivery.attempts) == (ORDER_FIELDS["ipn"], "paid", 0)
    assert len(callbacks) == 1  # the delivery task, enqueued after commit


def test_paying_without_an_account_then_confirming(
    browser: Client, account: SandboxAccount
) -> None:
    order = make_order(account, amount_int=50_000_000)

    response = pay(browser, order, method="bitcoin", amount_choice="full")

    assert response.status_code == 303
    assert response["Location"] == SUCCESS
    payment = SandboxPayment.objects.get()
    assert (payment.status, payment.amount_pending, payment.amount_valid, payment.amount_total) == (
        "partial",
        50_000_000,
        0,
        50_000_000,
    )
    assert not LedgerEntry.objects.exists()  # credited only after 6 confirmations
    assert only_delivery(payment).body == (
        f"id={order.transaction}&payment_id={payment.payment_id}&status=partial"
        "&amount_pending=50000000&amount_valid=0&amount_total=50000000&data=order-42"
    )
    order.refresh_from_db()
    assert order.status == "open"
    assert "0.50000000\u00a0BTC confirming" in browser.get(page_url(order)).content.decode()

    confirm_url = f"{page_url(order)}/confirm/{payment.payment_id}"
    response = submit(browser, order, confirm_url)

    assert response.status_code == 303
    assert response["Location"] == f"{page_url(order)}?notice=confirmed"
    payment.refresh_from_db()
    assert (payment.status, payment.amount_pending, payment.amount_valid) == (
        "paid",
        0,
        50_000_000,
    )
    paid_ipn = IpnDelivery.objects.filter(payment=payment, status="paid").get()
    assert paid_ipn.body == (
        f"id={order.transaction}&payment_id={payment.payment_id}&status=paid"
        f"&amount=50000000&currency=BTC&method=MTGOXBTC&date={ipn_date(payment)}&data=order-42"
    )
    assert LedgerEntry.objects.get().payment == payment
    order.refresh_from_db()
    assert order.status == "paid"
    assert "6 confirmations" in browser.get(response["Location"]).content.decode()
    # Confirming twice is refused.
    again = Client().post(confirm_url)
    assert again.status_code == 409
    assert "not partial" in again.content.decode()
    assert services.credited_btc(order) == 50_000_000


@pytest.mark.parametrize(
    "chosen",
    [
        {"amount_choice": "less"},
        {"amount_choice": "more"},
        {"amount_choice": "custom", "amount_btc": "0.00000001"},
        {"amount_choice": "custom", "amount_btc": "not an amount"},
        {"amount_choice": "nonsense"},
    ],
)
def test_an_account_pays_exactly_the_price_whatever_amount_is_posted(
    browser: Client, account: SandboxAccount, chosen: dict[str, str]
) -> None:
    order = make_order(account, amount_int=50_000_000)

    response = pay(browser, order, method="account", **chosen)

    assert response.status_code == 303
    payment = SandboxPayment.objects.get()
    assert (payment.status, payment.amount_int) == ("paid", 50_000_000)
    assert LedgerEntry.objects.get().value_int == 50_000_000
    assert "&status=paid&amount=50000000&" in only_delivery(payment).body
    order.refresh_from_db()
    assert order.status == "paid"


def test_too_little_confirmed_leaves_the_order_open_with_a_partial_ipn(
    browser: Client, account: SandboxAccount
) -> None:
    order = make_order(account, amount_int=50_000_000)
    assert pay(browser, order, method="bitcoin", amount_choice="less")["Location"] == SUCCESS
    sent = SandboxPayment.objects.get()

    response = submit(browser, order, f"{page_url(order)}/confirm/{sent.payment_id}")

    assert response["Location"] == f"{page_url(order)}?notice=confirmed-short"
    sent.refresh_from_db()
    assert (sent.status, sent.amount_int, sent.amount_valid) == ("paid", 25_000_000, 25_000_000)
    assert LedgerEntry.objects.get().value_int == 25_000_000  # credited all the same
    bodies = [d.body for d in IpnDelivery.objects.order_by("id")]
    assert bodies[1] == (
        f"id={order.transaction}&payment_id={sent.payment_id}&status=partial"
        "&amount_pending=0&amount_valid=25000000&amount_total=25000000&data=order-42"
    )
    assert [d.status for d in IpnDelivery.objects.order_by("id")] == ["partial", "partial"]
    order.refresh_from_db()
    assert order.status == "open"
    html = browser.get(response["Location"]).content.decode()
    assert "not covered yet" in html
    # The rest, by a gateway account: exactly what is missing, and now `paid`.
    assert "Pay 0.25000000\u00a0BTC with my gateway account" in pay_forms(browser, order)["account"]
    assert pay(browser, order, method="account", amount_choice="more")["Location"] == SUCCESS
    rest = SandboxPayment.objects.get(method="account")
    assert rest.amount_int == 25_000_000
    assert "&status=paid&amount=25000000&" in only_delivery(rest).body
    order.refresh_from_db()
    assert order.status == "paid"
    assert [e.balance_int for e in LedgerEntry.objects.order_by("index")] == [
        25_000_000,
        50_000_000,
    ]


def test_two_confirmed_halves_paid_only_by_the_one_that_covers(
    browser: Client, account: SandboxAccount
) -> None:
    order = make_order(account, amount_int=50_000_000)
    for _ in range(2):
        pay(browser, order, method="bitcoin", amount_choice="custom", amount_btc="0.25")
    first, second = SandboxPayment.objects.order_by("id")

    notices = [
        submit(browser, order, f"{page_url(order)}/confirm/{payment.payment_id}")["Location"]
        for payment in (first, second)
    ]

    assert [notice.rsplit("=", 1)[1] for notice in notices] == ["confirmed-short", "confirmed"]
    # Each payment's IPNs: sent (partial), then confirmed.
    assert [d.status for d in IpnDelivery.objects.filter(payment=first).order_by("id")] == [
        "partial",
        "partial",  # 0.25 of 0.5 BTC credited: not covered
    ]
    assert [d.status for d in IpnDelivery.objects.filter(payment=second).order_by("id")] == [
        "partial",
        "paid",  # with it, 0.5 of 0.5 BTC: covered
    ]
    assert "&status=paid&amount=25000000&" in IpnDelivery.objects.get(status="paid").body
    order.refresh_from_db()
    assert order.status == "paid"


def test_paying_too_much(browser: Client, account: SandboxAccount) -> None:
    order = make_order(account, amount_int=50_000_000)
    pay(browser, order, method="bitcoin", amount_choice="more")
    payment = SandboxPayment.objects.get()
    assert (payment.status, payment.amount_total) == ("partial", 75_000_000)

    response = submit(browser, order, f"{page_url(order)}/confirm/{payment.payment_id}")

    assert response["Location"] == f"{page_url(order)}?notice=confirmed"
    assert LedgerEntry.objects.get().value_int == 75_000_000
    assert "&status=paid&amount=75000000&" in IpnDelivery.objects.get(status="paid").body
    order.refresh_from_db()
    assert order.status == "paid"


@pytest.mark.parametrize("typed", ["", "abc", "0", "-1", "1e3", "0.000000001"])
def test_a_bad_typed_amount_is_refused_with_a_message(
    browser: Client, account: SandboxAccount, typed: str
) -> None:
    order = make_order(account)

    response = pay(browser, order, method="bitcoin", amount_choice="custom", amount_btc=typed)

    assert response.status_code == 400
    assert 'class="message error"' in response.content.decode()
    assert not SandboxPayment.objects.exists()


def test_cancelling(browser: Client, account: SandboxAccount) -> None:
    order = make_order(account)

    response = submit(browser, order, f"{page_url(order)}/cancel")

    assert response.status_code == 303
    assert response["Location"] == FAILURE
    payment = SandboxPayment.objects.get()
    assert payment.status == "cancelled"
    assert only_delivery(payment).body == (
        f"id={order.transaction}&payment_id={payment.payment_id}&status=cancelled&data=order-42"
    )
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert not LedgerEntry.objects.exists()


def test_instant_only_orders_refuse_the_no_account_path(
    browser: Client, account: SandboxAccount
) -> None:
    order = make_order(account, instant_only=True)

    html = browser.get(page_url(order)).content.decode()
    assert 'value="bitcoin"' not in html
    assert "instant_only" in html

    response = pay(browser, order, method="bitcoin", amount_choice="full")

    assert response.status_code == 400
    assert "gateway account holders" in response.content.decode()
    assert not SandboxPayment.objects.exists()
    assert pay(browser, order, method="account")["Location"] == SUCCESS


def test_an_order_paid_in_full_takes_no_more_payments(
    browser: Client, account: SandboxAccount
) -> None:
    order = make_order(account)
    pay(browser, order, method="account")

    html = browser.get(page_url(order)).content.decode()
    assert "has been paid in full" in html
    assert f'action="{page_url(order)}/pay"' not in html
    assert f'action="{page_url(order)}/cancel"' not in html

    with pytest.raises(AlreadyPaid):
        services.payment_pay(order=order, method="account")
    with pytest.raises(AlreadyPaid):
        services.order_cancel(order=order)
    response = Client().post(f"{page_url(order)}/pay", {"method": "account"})
    assert response.status_code == 409
    assert "already been paid in full" in response.content.decode()
    assert SandboxPayment.objects.count() == 1


def test_multipay_orders_take_several_payments(browser: Client, account: SandboxAccount) -> None:
    order = make_order(account, multipay=True, amount_int=10_000_000)

    for _ in range(3):
        assert pay(browser, order, method="account")["Location"] == SUCCESS

    payments = list(SandboxPayment.objects.order_by("id"))
    assert len({p.payment_id for p in payments}) == 3
    assert [e.balance_int for e in LedgerEntry.objects.order_by("index")] == [
        10_000_000,
        20_000_000,
        30_000_000,
    ]
    assert IpnDelivery.objects.count() == 3
    assert 'action="' + page_url(order) + '/pay"' in browser.get(page_url(order)).content.decode()
    account_form = pay_forms(browser, order)["account"]
    assert "Pay 0.10000000\u00a0BTC with my gateway account" in account_form
    assert "covered already: with multipay, the price again" in account_form


def test_multipay_covered_each_confirmed_payment_is_paid(
    browser: Client, account: SandboxAccount
) -> None:
    order = make_order(account, multipay=True, amount_int=10_000_000)
    pay(browser, order, method="account")
    pay(browser, order, method="bitcoin", amount_choice="less")
    sent = SandboxPayment.objects.get(method="bitcoin")

    response = submit(browser, order, f"{page_url(order)}/confirm/{sent.payment_id}")

    assert response["Location"] == f"{page_url(order)}?notice=confirmed"
    delivery = IpnDelivery.objects.filter(payment=sent).order_by("id").last()
    assert delivery is not None
    assert delivery.status == "paid"
    assert "&status=paid&amount=5000000&" in delivery.body


def test_no_ipn_url_means_no_delivery(browser: Client, account: SandboxAccount) -> None:
    order = make_order(account, ipn="")

    pay(browser, order, method="account")

    assert SandboxPayment.objects.count() == 1
    assert not IpnDelivery.objects.exists()


def test_without_data_the_ipn_has_no_data_field(browser: Client, account: SandboxAccount) -> None:
    order = make_order(account, data="")

    pay(browser, order, method="bitcoin", amount_choice="full")

    assert "data=" not in IpnDelivery.objects.get().body


def test_the_data_is_url_encoded_in_the_ipn(browser: Client, account: SandboxAccount) -> None:
    order = make_order(account, data="a=1&b=ü x")

    submit(browser, order, f"{page_url(order)}/cancel")

    assert IpnDelivery.objects.get().body.endswith("&data=a%3D1%26b%3D%C3%BC+x")


def test_the_button_link_leads_to_the_payment_page(client: Client, account: SandboxAccount) -> None:
    order = make_order(account)

    response = client.get(f"/sandbox/{order.transaction}")

    assert response.status_code == 302
    assert response["Location"] == page_url(order)


@pytest.mark.parametrize(
    "path",
    [
        "/sandbox/pay/8d7f6e5c-0000-4000-8000-000000000000",
        "/sandbox/pay/not-a-uuid",
        "/sandbox/8d7f6e5c-0000-4000-8000-000000000000",
    ],
)
def test_unknown_orders_are_404(client: Client, account: SandboxAccount, path: str) -> None:
    assert client.get(path).status_code == 404


def test_the_index_lists_recent_orders(client: Client, account: SandboxAccount) -> None:
    order = make_order(account, currency="USD", amount_int=1_250_000)

    html = client.get("/sandbox/").content.decode()

    assert f'href="{page_url(order)}"' in html
    assert "$12.50000" in html
