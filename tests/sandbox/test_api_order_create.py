"""1/generic/private/merchant/order/create: the reply, what is stored, each parameter checked."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest

from sandbox.models import SandboxAccount, SandboxOrder
from tests.sandbox.conftest import ORDER_FIELDS, Api, assert_error

pytestmark = pytest.mark.django_db


def test_success_shape_and_payment_url(api: Api, settings) -> None:
    settings.GATEWAY_PAYMENT_HOST = "https://pay.example/sandbox"

    response = api.create_order()

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"result", "return"}
    assert body["result"] == "success"
    assert set(body["return"]) == {"transaction", "payment_url"}
    transaction = uuid.UUID(body["return"]["transaction"])
    assert body["return"]["payment_url"] == f"https://pay.example/sandbox/pay/{transaction}"


def test_the_order_is_stored_as_given(api: Api, account: SandboxAccount) -> None:
    response = api.create_order(
        {
            "currency": "EUR",
            "amount_int": "960000",
            "multipay": "1",
            "instant_only": "1",
            "email": "0",
            "autosell": "1",
        }
    )

    order = SandboxOrder.objects.get(transaction=response.json()["return"]["transaction"])
    assert order.account == account
    assert (order.currency, order.amount_int) == ("EUR", 960_000)
    assert order.amount_btc_int == 100_000_000  # 9.60000 EUR at 9.60000 EUR/BTC
    assert order.return_success == "https://shop.example/paid?order=42"
    assert order.return_failure == "https://shop.example/cancelled?order=42"
    assert order.ipn == "https://shop.example/payments/ipn/"
    assert order.data == "order-42"
    assert order.description == "Order 42 at the example shop"
    assert (order.multipay, order.instant_only, order.email, order.autosell) == (
        True,
        True,
        False,
        True,
    )
    assert order.status == "open"


def test_optional_parameters_may_be_left_out(api: Api) -> None:
    response = api.create_order({"ipn": None, "data": None, "description": None})

    assert response.status_code == 200, response.content
    order = SandboxOrder.objects.get()
    assert (order.ipn, order.data, order.description) == ("", "", "")
    assert not (order.multipay or order.instant_only or order.email or order.autosell)


@pytest.mark.parametrize(
    ("currency", "amount", "expected_int"),
    [
        ("USD", "12.5", 1_250_000),
        ("USD", "0.00001", 1),
        ("JPY", "1030.125", 1_030_125),
        ("BTC", "0.12345678", 12_345_678),
        ("BTC", ".5", 50_000_000),
    ],
)
def test_the_legacy_decimal_amount_is_accepted(
    api: Api, currency: str, amount: str, expected_int: int
) -> None:
    response = api.create_order({"currency": currency, "amount_int": None, "amount": amount})

    assert response.status_code == 200, response.content
    assert SandboxOrder.objects.get().amount_int == expected_int


def test_fiat_orders_are_quoted_in_btc_rounded_up(api: Api, settings) -> None:
    settings.SANDBOX_RATES = {"USD": "3.00000"}

    api.create_order({"amount_int": "1000000"})  # 10 USD / 3 USD = 3.333333333... BTC

    assert SandboxOrder.objects.get().amount_btc_int == 333_333_334


MISSING = None


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"currency": MISSING}, "currency"),
        ({"currency": ""}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "usd"}, "currency"),
        ({"amount_int": MISSING}, "amount_int"),
        ({"amount_int": ""}, "amount_int"),
        ({"amount_int": "0"}, "amount_int"),
        ({"amount_int": "-5"}, "amount_int"),
        ({"amount_int": "12.5"}, "amount_int"),
        ({"amount_int": "1e6"}, "amount_int"),
        ({"amount_int": " 100"}, "amount_int"),
        ({"amount_int": "9223372036854775808"}, "amount_int"),  # 2**63
        ({"amount_int": "99999999999999999999"}, "amount_int"),
        ({"amount": "12.5"}, "amount"),  # both amount and amount_int
        ({"amount_int": MISSING, "amount": "1e3"}, "amount"),
        ({"amount_int": MISSING, "amount": "NaN"}, "amount"),
        ({"amount_int": MISSING, "amount": "-1"}, "amount"),
        ({"amount_int": MISSING, "amount": "1.000001"}, "amount"),  # 6 decimals in USD
        ({"amount_int": MISSING, "amount": "0"}, "amount"),
        ({"amount_int": MISSING, "amount": "12,50"}, "amount"),
        ({"return_success": MISSING}, "return_success"),
        ({"return_success": ""}, "return_success"),
        ({"return_success": "/relative/path"}, "return_success"),
        ({"return_success": "javascript:alert(1)"}, "return_success"),
        ({"return_success": "ftp://shop.example/"}, "return_success"),
        ({"return_success": "https://"}, "return_success"),
        ({"return_success": "https://shop.example/a b"}, "return_success"),
        ({"return_success": "https://shop.example:99999/"}, "return_success"),
        ({"return_failure": MISSING}, "return_failure"),
        ({"return_failure": "shop.example/cancelled"}, "return_failure"),
        ({"ipn": "mailto:shop@example.com"}, "ipn"),
        ({"ipn": "http:///no-host"}, "ipn"),
        ({"email": "yes"}, "email"),
        ({"email": ""}, "email"),
        ({"autosell": "2"}, "autosell"),
        ({"multipay": "true"}, "multipay"),
        ({"instant_only": "01"}, "instant_only"),
        ({"description": "d" * 256}, "description"),
        ({"data": "x" * 1025}, "data"),
    ],
)
def test_each_missing_or_malformed_parameter_is_named(
    api: Api, account: SandboxAccount, overrides: Mapping[str, str | None], named: str
) -> None:
    response = api.create_order(overrides)

    assert_error(response, "invalid_parameter", 400, mentions=f"'{named}'")
    assert not SandboxOrder.objects.exists()
    account.refresh_from_db()
    assert account.last_nonce == 0


def test_a_repeated_parameter_is_refused(api: Api) -> None:
    fields = [*ORDER_FIELDS.items(), ("amount_int", "5")]

    assert_error(
        api.call("1/generic/private/merchant/order/create", fields),
        "invalid_parameter",
        400,
        mentions="'amount_int'",
    )


def test_limits_are_inclusive(api: Api) -> None:
    response = api.create_order(
        {"description": "d" * 255, "data": "x" * 1024, "amount_int": "9223372036854775807"}
    )
    # 2**63-1 USD units is too much to pay in BTC at the sandbox rate.
    assert_error(response, "invalid_parameter", 400, mentions="'amount_int'")

    response = api.create_order(
        {"description": "d" * 255, "data": "x" * 1024, "currency": "BTC"}
        | {"amount_int": "9223372036854775807"}
    )
    assert response.status_code == 200, response.content


def test_unicode_description_and_data_round_trip(api: Api) -> None:
    response = api.create_order({"description": "Café ☕ für 2", "data": "ref=1&x=ü"})

    assert response.status_code == 200, response.content
    order = SandboxOrder.objects.get()
    assert (order.description, order.data) == ("Café ☕ für 2", "ref=1&x=ü")


def test_unknown_extra_parameters_are_ignored(api: Api) -> None:
    assert api.create_order({"colour": "blue"}).status_code == 200
