"""Currencies as the gateway shows them: value objects, displays and the sandbox rates.

Pure functions over integers and Decimal; settings are read inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from payments import money
from payments.exceptions import AmountError

NBSP = "\u00a0"


@dataclass(frozen=True)
class CurrencyInfo:
    code: str
    name: str
    symbol: str
    symbol_position: str  # "before" or "after"


_INFO = {
    info.code: info
    for info in (
        CurrencyInfo("BTC", "Bitcoin", "BTC", "after"),
        CurrencyInfo("USD", "US Dollar", "$", "before"),
        CurrencyInfo("AUD", "Australian Dollar", "AU$", "before"),
        CurrencyInfo("CAD", "Canadian Dollar", "CA$", "before"),
        CurrencyInfo("CHF", "Swiss Franc", "CHF", "after"),
        CurrencyInfo("CNY", "Chinese Yuan", "CN¥", "before"),
        CurrencyInfo("DKK", "Danish Krone", "kr", "after"),
        CurrencyInfo("EUR", "Euro", "€", "after"),
        CurrencyInfo("GBP", "British Pound", "£", "before"),
        CurrencyInfo("HKD", "Hong Kong Dollar", "HK$", "before"),
        CurrencyInfo("JPY", "Japanese Yen", "¥", "before"),
        CurrencyInfo("NZD", "New Zealand Dollar", "NZ$", "before"),
        CurrencyInfo("PLN", "Polish Zloty", "zł", "after"),
        CurrencyInfo("RUB", "Russian Rouble", "\u0440\u0443\u0431", "after"),
        CurrencyInfo("SEK", "Swedish Krona", "kr", "after"),
        CurrencyInfo("SGD", "Singapore Dollar", "S$", "before"),
        CurrencyInfo("THB", "Thai Baht", "฿", "before"),
    )
}

# The BTC price of each fiat currency when settings.SANDBOX_RATES does not say
# (roughly late 2012), as plain decimal strings in the currency's decimals.
DEFAULT_RATES = {
    "USD": "12.50000",
    "AUD": "12.00000",
    "CAD": "12.40000",
    "CHF": "11.60000",
    "CNY": "78.00000",
    "DKK": "71.50000",
    "EUR": "9.60000",
    "GBP": "7.80000",
    "HKD": "96.90000",
    "JPY": "1030.000",
    "NZD": "15.20000",
    "PLN": "39.50000",
    "RUB": "385.00000",
    "SEK": "83.000",
    "SGD": "15.30000",
    "THB": "383.00000",
}

# 24 h volume shown by the ticker (BTC, 1E8): a fixed, plausible number.
TICKER_VOLUME_INT = 5_582_958_960_346


def info(currency: str) -> CurrencyInfo:
    """The gateway's description of `currency` (raises UnknownCurrency)."""
    money.decimals(currency)
    return _INFO[currency]


def display(amount_int: int, currency: str) -> str:
    """'$1,234.56789', '0.12345678\u00a0BTC', '-€1.00000' style display of an integer amount."""
    currency_info = info(currency)
    number = money.to_decimal(abs(amount_int), currency)
    text = f"{number:,f}"  # `f`: never an exponent (1E-8)
    sign = "-" if amount_int < 0 else ""
    if currency_info.symbol_position == "before":
        return f"{sign}{currency_info.symbol}{text}"
    return f"{sign}{text}{NBSP}{currency_info.symbol}"


def value_object(amount_int: int, currency: str) -> dict[str, str]:
    """The protocol's amount: {"value", "value_int", "display", "currency"}."""
    return {
        "value": money.amount_text(amount_int, currency),
        "value_int": str(amount_int),
        "display": display(amount_int, currency),
        "currency": currency,
    }


def currency_description(currency: str) -> dict[str, str]:
    """The return of 1/generic/currency."""
    currency_info = info(currency)
    places = money.decimals(currency)
    sample = Decimal("1234.567890123456").quantize(Decimal(1).scaleb(-places), ROUND_DOWN)
    sample_int = int(sample.scaleb(places))
    return {
        "currency": currency,
        "name": currency_info.name,
        "symbol": currency_info.symbol,
        "decimals": str(places),
        "display": display(sample_int, currency),
        "symbol_position": currency_info.symbol_position,
        "virtual": "Y" if currency == money.BTC else "N",
    }


def rate_int(currency: str) -> int:
    """The sandbox price of 1 BTC in `currency`, as an integer in its units.

    From settings.SANDBOX_RATES ({"USD": "12.50000"}) or DEFAULT_RATES. BTC is 1.
    """
    if currency == money.BTC:
        return money.scale(money.BTC)
    money.decimals(currency)  # UnknownCurrency for anything else
    configured: dict[str, Any] = {
        str(code).upper(): value for code, value in settings.SANDBOX_RATES.items()
    }
    text = str(configured.get(currency, DEFAULT_RATES[currency])).strip()
    try:
        return money.to_int(text, currency)
    except AmountError as exc:
        raise ImproperlyConfigured(
            f"SANDBOX_RATES[{currency!r}] is not a valid rate: {exc}"
        ) from exc


def btc_for(amount_int: int, currency: str) -> int:
    """The BTC amount (1E8) that pays `amount_int` of `currency` at the sandbox rate.

    amount / rate, rounded up to 1E-8. Both are integers in the same currency
    units, so BTC_int = ceil(amount_int * 1E8 / rate_int): exact integer
    arithmetic (what Decimal with ROUND_CEILING would give, without a context's
    precision to worry about).
    """
    if currency == money.BTC:
        return amount_int
    rate = rate_int(currency)
    return -(-amount_int * money.scale(money.BTC) // rate)


def ticker(currency: str) -> dict[str, dict[str, str]]:
    """The return of 1/BTC<CUR>/ticker: value objects around the sandbox rate."""
    last = rate_int(currency)

    def scaled(per_thousand: int) -> dict[str, str]:
        return value_object(last * per_thousand // 1000, currency)

    return {
        "high": scaled(1020),
        "low": scaled(980),
        "avg": scaled(1000),
        "vwap": scaled(1000),
        "vol": value_object(TICKER_VOLUME_INT, money.BTC),
        "last_all": scaled(1000),
        "last_local": scaled(1000),
        "last_orig": scaled(1000),
        "last": scaled(1000),
        "buy": scaled(995),
        "sell": scaled(1005),
    }
