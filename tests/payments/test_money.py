"""Currency units of the protocol: exact conversions and every rejection."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from payments.exceptions import AmountError, UnknownCurrency
from payments.money import (
    CURRENCIES,
    MAX_AMOUNT_INT,
    decimals,
    display,
    scale,
    to_decimal,
    to_int,
)

# The units table (docs/design.md, "Money rules"), written out independently of the code.
UNITS = {
    "BTC": 10**8,
    "JPY": 10**3,
    "SEK": 10**3,
    **{
        code: 10**5
        for code in (
            "USD",
            "AUD",
            "CAD",
            "CHF",
            "CNY",
            "DKK",
            "EUR",
            "GBP",
            "HKD",
            "NZD",
            "PLN",
            "RUB",
            "SGD",
            "THB",
        )
    },
}


def test_the_module_knows_exactly_the_currencies_of_the_table() -> None:
    assert set(CURRENCIES) == set(UNITS)


@pytest.mark.parametrize(("currency", "unit"), UNITS.items())
def test_scale_and_decimals_follow_the_units_table(currency: str, unit: int) -> None:
    assert scale(currency) == unit
    assert 10 ** decimals(currency) == unit


@pytest.mark.parametrize(
    ("text", "currency", "amount_int"),
    [
        ("12.50", "USD", 1_250_000),
        ("12.5", "USD", 1_250_000),
        ("12.50000", "USD", 1_250_000),
        ("0.00001", "EUR", 1),
        ("1500", "JPY", 1_500_000),
        ("1500.000", "JPY", 1_500_000),
        ("0.001", "SEK", 1),
        ("0.12345678", "BTC", 12_345_678),
        ("21000000", "BTC", 2_100_000_000_000_000),
        (".5", "USD", 50_000),
        ("7.", "GBP", 700_000),
        ("007.10", "CHF", 710_000),
    ],
)
def test_to_int_converts_exactly(text: str, currency: str, amount_int: int) -> None:
    assert to_int(text, currency) == amount_int
    assert to_int(Decimal(text), currency) == amount_int


@pytest.mark.parametrize(
    ("amount_int", "currency", "expected"),
    [
        (1_250_000, "USD", "12.50000"),
        (1, "USD", "0.00001"),
        (1_500_000, "JPY", "1500.000"),
        (1, "SEK", "0.001"),
        (12_345_678, "BTC", "0.12345678"),
        (100_000_000, "BTC", "1.00000000"),
    ],
)
def test_to_decimal_converts_exactly_with_the_currency_decimals(
    amount_int: int, currency: str, expected: str
) -> None:
    result = to_decimal(amount_int, currency)
    assert result == Decimal(expected)
    assert format(result, "f") == expected  # the exponent, not only the value, is the currency's


@pytest.mark.parametrize(
    ("amount_int", "currency", "shown"),
    [
        (1_250_000, "USD", "12.50 USD"),  # the usual two decimals
        (1_500_000, "JPY", "1,500 JPY"),  # yen have none; thousands grouped
        (5_000_000, "BTC", "0.05 BTC"),
        (12_345_678, "BTC", "0.12345678 BTC"),
        (100_000_000, "BTC", "1.00 BTC"),
        (1_234_567, "USD", "12.34567 USD"),  # every decimal it has: never rounded away
        (1_500_500, "JPY", "1,500.5 JPY"),
        (123_456_789_012, "EUR", "1,234,567.89012 EUR"),
        (1_000, "SEK", "1.00 SEK"),
        (-100_000, "USD", "-1.00 USD"),
    ],
)
def test_display_is_the_currencys_usual_form(amount_int: int, currency: str, shown: str) -> None:
    assert display(amount_int, currency) == shown


def test_display_of_one_satoshi_is_plain() -> None:
    assert display(1, "BTC") == "0.00000001 BTC"


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("12.123456", "USD"),  # 6 decimals, USD has 5
        ("0.0001", "JPY"),
        ("0.123456789", "BTC"),
        (Decimal("12.123456"), "USD"),
    ],
    ids=["usd", "jpy", "btc", "decimal"],
)
def test_too_many_decimals_are_rejected(amount: str | Decimal, currency: str) -> None:
    with pytest.raises(AmountError, match="at most"):
        to_int(amount, currency)


def test_trailing_zeros_beyond_the_decimals_are_not_extra_precision() -> None:
    assert to_int("12.5000000", "USD") == 1_250_000


@pytest.mark.parametrize(
    "amount",
    [
        "0",
        "0.00",
        ".0",
        "-1",
        "-0.5",
        Decimal("-1"),
        Decimal("0"),
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        Decimal("NaN"),
        Decimal("Infinity"),
        "1e5",
        "1E5",
        "1.5e-3",
        " 12.50",
        "12.50 ",
        "12 .50",
        "12,50",
        "1_000",
        "+12.50",
        "+1",
        "",
        ".",
        "abc",
        "12.50USD",
        "$12.50",
        "0x10",
        "١٢",  # Arabic-Indic digits: Decimal() would take them
        "1" * 41,
    ],
)
def test_amounts_that_are_not_plain_positive_numbers_are_rejected(amount: str | Decimal) -> None:
    with pytest.raises(AmountError):
        to_int(amount, "USD")


@pytest.mark.parametrize("amount", [12.5, 0.1, float("nan"), float("inf")])
def test_floats_are_rejected(amount: float) -> None:
    with pytest.raises(AmountError, match="float"):
        to_int(amount, "USD")  # type: ignore[arg-type]


def test_the_largest_64_bit_amount_is_accepted_and_one_more_is_too_large() -> None:
    largest = format(to_decimal(MAX_AMOUNT_INT, "BTC"), "f")
    assert to_int(largest, "BTC") == MAX_AMOUNT_INT
    too_large = format(to_decimal(MAX_AMOUNT_INT + 1, "BTC"), "f")
    with pytest.raises(AmountError, match="too large"):
        to_int(too_large, "BTC")


def test_too_long_text_is_rejected_before_parsing() -> None:
    with pytest.raises(AmountError, match="too long"):
        to_int("0" * 39 + "12", "USD")


@pytest.mark.parametrize("currency", ["XYZ", "usd", "", "BTCUSD", "EURO"])
def test_unknown_currencies_are_rejected_everywhere(currency: str) -> None:
    for call in (
        lambda: decimals(currency),
        lambda: scale(currency),
        lambda: to_int("1", currency),
        lambda: to_decimal(1, currency),
        lambda: display(1, currency),
    ):
        with pytest.raises(UnknownCurrency):
            call()


def test_unknown_currency_is_an_amount_error_and_a_value_error() -> None:
    assert issubclass(UnknownCurrency, AmountError)
    assert issubclass(AmountError, ValueError)


@hypothesis_settings(database=None, max_examples=300)
@given(amount_int=st.integers(min_value=1, max_value=10**15), currency=st.sampled_from(CURRENCIES))
def test_integer_to_decimal_and_back_is_exact(amount_int: int, currency: str) -> None:
    as_decimal = to_decimal(amount_int, currency)
    # Plain notation: str(Decimal) writes tiny amounts as "1E-8", which to_int refuses
    # (exponents are not accepted from people), so the text goes through format(..., "f").
    assert to_int(format(as_decimal, "f"), currency) == amount_int
    assert to_int(as_decimal, currency) == amount_int
    assert as_decimal * scale(currency) == amount_int
