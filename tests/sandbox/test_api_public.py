"""Public methods: 1/BTC<CUR>/ticker and 1/generic/currency (GET or POST)."""

from __future__ import annotations

import pytest
from django.test import Client

from payments import money
from sandbox import currencies
from tests.sandbox.conftest import API, USER_AGENT, assert_error

UA = {"User-Agent": USER_AGENT}
TICKER_FIELDS = {"high", "low", "avg", "vwap", "vol", "last", "buy", "sell"} | {
    "last_all",
    "last_local",
    "last_orig",
}


def is_value_object(value: object, currency: str) -> bool:
    if not isinstance(value, dict) or set(value) != {"value", "value_int", "display", "currency"}:
        return False
    return (
        value["currency"] == currency
        and value["value_int"].isdigit()
        and money.to_int(value["value"], currency) == int(value["value_int"])
    )


@pytest.mark.parametrize("currency", money.FIAT_CURRENCIES)
def test_ticker_for_every_fiat_currency(client: Client, currency: str) -> None:
    response = client.get(f"{API}1/BTC{currency}/ticker", headers=UA)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["result"] == "success"
    ticker = body["return"]
    assert set(ticker) == TICKER_FIELDS
    for name in TICKER_FIELDS - {"vol"}:
        assert is_value_object(ticker[name], currency), (name, ticker[name])
    assert is_value_object(ticker["vol"], "BTC")
    last = int(ticker["last"]["value_int"])
    assert int(ticker["low"]["value_int"]) < int(ticker["buy"]["value_int"]) < last
    assert last < int(ticker["sell"]["value_int"]) < int(ticker["high"]["value_int"])


def test_ticker_uses_the_configured_rate_and_displays_it(client: Client, settings) -> None:
    settings.SANDBOX_RATES = {"USD": "12.34567"}

    ticker = client.post(f"{API}1/BTCUSD/ticker", headers=UA).json()["return"]

    assert ticker["last"] == {
        "value": "12.34567",
        "value_int": "1234567",
        "display": "$12.34567",
        "currency": "USD",
    }
    assert ticker["vol"]["display"] == "55,829.58960346\u00a0BTC"


@pytest.mark.parametrize("pair", ["BTCXYZ", "BTCBTC", "BTCusd", "BTC", "BTCUSDX"])
def test_ticker_of_an_unknown_currency_is_an_invalid_parameter(client: Client, pair: str) -> None:
    assert_error(
        client.get(f"{API}1/{pair}/ticker", headers=UA), "invalid_parameter", 400, "currency"
    )


def test_currency_description(client: Client) -> None:
    response = client.get(f"{API}1/generic/currency", {"currency": "USD"}, headers=UA)

    assert response.json() == {
        "result": "success",
        "return": {
            "currency": "USD",
            "name": "US Dollar",
            "symbol": "$",
            "decimals": "5",
            "display": "$1,234.56789",
            "symbol_position": "before",
            "virtual": "N",
        },
    }


@pytest.mark.parametrize(
    ("currency", "decimals", "virtual"),
    [("BTC", "8", "Y"), ("JPY", "3", "N"), ("SEK", "3", "N"), ("EUR", "5", "N")],
)
def test_currency_decimals(client: Client, currency: str, decimals: str, virtual: str) -> None:
    # POST with a form body works as well as GET.
    response = client.post(
        f"{API}1/generic/currency",
        f"currency={currency}",
        content_type="application/x-www-form-urlencoded",
        headers=UA,
    )

    described = response.json()["return"]
    assert (described["decimals"], described["virtual"]) == (decimals, virtual)
    assert described["currency"] == currency


@pytest.mark.parametrize("query", [{}, {"currency": ""}, {"currency": "XBT"}])
def test_currency_missing_or_unknown(client: Client, query: dict[str, str]) -> None:
    assert_error(
        client.get(f"{API}1/generic/currency", query, headers=UA),
        "invalid_parameter",
        400,
        "currency",
    )


def test_public_methods_refuse_other_http_methods(client: Client) -> None:
    assert_error(client.put(f"{API}1/BTCUSD/ticker", headers=UA), "method_not_allowed", 405)


@pytest.mark.parametrize(
    ("amount_int", "currency", "value", "display"),
    [
        (0, "BTC", "0.00000000", "0.00000000\u00a0BTC"),
        (1, "BTC", "0.00000001", "0.00000001\u00a0BTC"),
        (10, "BTC", "0.00000010", "0.00000010\u00a0BTC"),
        (123_456_789_012, "BTC", "1234.56789012", "1,234.56789012\u00a0BTC"),
        (1, "USD", "0.00001", "$0.00001"),
        (100, "JPY", "0.100", "¥0.100"),
        (-150_000, "EUR", "-1.50000", "-1.50000\u00a0€"),
    ],
)
def test_value_objects_never_use_exponents(
    amount_int: int, currency: str, value: str, display: str
) -> None:
    assert currencies.value_object(amount_int, currency) == {
        "value": value,
        "value_int": str(amount_int),
        "display": display,
        "currency": currency,
    }


def test_unusable_rates_are_reported_by_the_system_checks(settings) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from sandbox.checks import check_rates

    settings.SANDBOX_RATES = {"usd": "12.5", "EUR": "abc", "XBT": "1", "JPY": "0"}

    found = {(message.id, message.msg.split(":")[0]) for message in check_rates()}

    assert {message_id for message_id, _ in found} == {"sandbox.E001", "sandbox.W001"}
    assert sum(message_id == "sandbox.E001" for message_id, _ in found) == 2  # EUR and JPY
    assert currencies.rate_int("USD") == 1_250_000  # lower-case keys are fine
    with pytest.raises(ImproperlyConfigured):
        currencies.rate_int("EUR")
