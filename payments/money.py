"""Currency units of the protocol: integers in the smallest unit, Decimal at the edges.

Integer amounts (`amount_int`, IPN amounts) are fixed-point: BTC has 8
decimals, JPY and SEK 3, every other fiat currency of the gateway 5. Binary
floats never touch money here.
"""

from __future__ import annotations

import re
from decimal import Decimal

from payments.exceptions import AmountError, UnknownCurrency

BTC = "BTC"
FIAT_CURRENCIES = (
    "USD", "AUD", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP",
    "HKD", "JPY", "NZD", "PLN", "RUB", "SEK", "SGD", "THB",
)  # fmt: skip
CURRENCIES = (BTC, *FIAT_CURRENCIES)
_DECIMALS = {BTC: 8, "JPY": 3, "SEK": 3}
DEFAULT_FIAT_DECIMALS = 5
# Integer amounts live in signed 64-bit columns (PostgreSQL bigint).
MAX_AMOUNT_INT = 2**63 - 1
MAX_AMOUNT_TEXT = 40

# Digits, an optional point and digits: no sign, no exponent, no spaces, no
# NaN or Infinity; Decimal() alone would accept all of those.
_PLAIN_DECIMAL = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]*))?|\.(?P<only>[0-9]+)")


def decimals(currency: str) -> int:
    """How many decimals the protocol's integer amounts carry for `currency`."""
    if currency not in CURRENCIES:
        known = ", ".join(CURRENCIES)
        raise UnknownCurrency(f"unknown currency {currency!r}; expected one of {known}")
    return _DECIMALS.get(currency, DEFAULT_FIAT_DECIMALS)


def scale(currency: str) -> int:
    """The integer that one unit of `currency` is worth (10 ** decimals)."""
    return 10 ** decimals(currency)


def to_int(amount: str | Decimal, currency: str) -> int:
    """Exactly convert a decimal amount ("12.50") to the protocol's integer (1250000 for USD).

    Rejects more decimals than the currency has, zero, negatives, exponents,
    NaN, infinity, signs, spaces and anything that is not a plain number.
    """
    places = decimals(currency)
    if isinstance(amount, float):
        raise AmountError("amounts are never floats; pass a decimal string")
    if isinstance(amount, Decimal):
        if not amount.is_finite():
            raise AmountError("the amount must be a finite number")
        text = format(amount, "f")
    else:
        text = str(amount)
    if len(text) > MAX_AMOUNT_TEXT:
        raise AmountError("the amount is too long")
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is None:
        raise AmountError(f"{text!r} is not a plain decimal amount such as 12.50")
    whole = match["whole"] or "0"
    fraction = (match["fraction"] or match["only"] or "").rstrip("0")
    if len(fraction) > places:
        raise AmountError(f"{currency} amounts have at most {places} decimals")
    value = int(whole) * 10**places + int(fraction.ljust(places, "0") or "0")
    if value <= 0:
        raise AmountError("the amount must be greater than zero")
    if value > MAX_AMOUNT_INT:
        raise AmountError("the amount is too large")
    return value


def to_decimal(amount_int: int, currency: str) -> Decimal:
    """The protocol's integer as an exact Decimal with the currency's decimals."""
    places = decimals(currency)
    return Decimal(amount_int).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def amount_text(amount_int: int, currency: str) -> str:
    """The protocol's integer as the API and the shop events write it: '12.50000' (no exponent)."""
    return format(to_decimal(amount_int, currency), "f")


# Decimals people usually write (at least; more when the amount has them): yen have none.
_USUAL_DECIMALS = {"JPY": 0}
USUAL_DECIMALS = 2


def display(amount_int: int, currency: str) -> str:
    """An amount as people write it: '12.50 USD', '1,500 JPY', '0.05 BTC', '12.34567 USD'.

    The currency's usual decimals, or every decimal the amount has: a display
    never rounds an amount away. The API and the protocol keep full precision.
    """
    exact = to_decimal(abs(amount_int), currency)
    fraction = format(exact, "f").partition(".")[2].rstrip("0")
    places = max(_USUAL_DECIMALS.get(currency, USUAL_DECIMALS), len(fraction))
    shown = exact.quantize(Decimal(1).scaleb(-places))
    sign = "-" if amount_int < 0 else ""
    return f"{sign}{shown:,f} {currency}"  # :f, or 1 satoshi shows 1E-8


def btc_for(amount_int: int, currency: str, rate_int: int) -> int:
    """The BTC (1E8) that pays `amount_int` of `currency` at `rate_int` (its units per BTC).

    amount / rate rounded up to a satoshi, in exact integer arithmetic:
    ceil(amount_int * 1E8 / rate_int); what the gateway asks a payer for.
    """
    if rate_int <= 0:
        raise AmountError("a rate must be positive")
    return -(-amount_int * scale(BTC) // rate_int)
