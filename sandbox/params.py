"""Parsing and validating request parameters like a strict gateway. Pure: no database.

Every failure is a ParameterError naming the parameter. Empty optional text
parameters (description, ipn, data) count as not given; flags are exactly
"0" or "1".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from payments import money
from payments.exceptions import AmountError
from sandbox.exceptions import ParameterError

MAX_FIELDS = 64
DESCRIPTION_MAX = 255
DATA_MAX = 1024
URL_MAX = 2000
FLAGS = ("email", "autosell", "multipay", "instant_only")
_DIGITS = re.compile(r"[0-9]{1,19}")
# No spaces or control characters anywhere in a URL we redirect to or POST to.
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")


class FormData:
    """Decoded form fields in order; a repeated field is an error when it is read."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def get(self, name: str) -> str | None:
        """The single value of `name`, None when absent; ParameterError when repeated."""
        values = self._values.get(name)
        if values is None:
            return None
        if len(values) > 1:
            raise ParameterError(name, f"parameter {name!r} is given more than once")
        return values[0]


def parse_form(body: bytes) -> FormData:
    """Decode an application/x-www-form-urlencoded body (ASCII, percent-encoded UTF-8)."""
    try:
        text = body.decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParameterError(
            "body", "the body is not application/x-www-form-urlencoded UTF-8 form data"
        ) from exc
    return FormData(pairs)


def parse_nonce(form: FormData) -> int | None:
    """The nonce as a positive 64-bit integer, or None when missing or malformed."""
    try:
        text = form.get("nonce")
    except ParameterError:
        return None
    if text is None or not _DIGITS.fullmatch(text):
        return None
    nonce = int(text)
    if nonce <= 0 or nonce > money.MAX_AMOUNT_INT:
        return None
    return nonce


def _required(form: FormData, name: str) -> str:
    value = form.get(name)
    if value is None or value == "":
        raise ParameterError(name, f"parameter {name!r} is required")
    return value


def _url(form: FormData, name: str, *, required: bool) -> str:
    value = _required(form, name) if required else (form.get(name) or "")
    if not value:
        return ""
    if len(value) > URL_MAX:
        raise ParameterError(name, f"parameter {name!r} is longer than {URL_MAX} characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError as exc:
        raise ParameterError(name, f"parameter {name!r} is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or _URL_FORBIDDEN.search(value):
        raise ParameterError(name, f"parameter {name!r} must be an absolute http(s) URL")
    return value


def _flag(form: FormData, name: str) -> bool:
    value = form.get(name)
    if value is None:
        return False
    if value not in ("0", "1"):
        raise ParameterError(name, f"parameter {name!r} must be 0 or 1")
    return value == "1"


def _text(form: FormData, name: str, limit: int) -> str:
    value = form.get(name) or ""
    if len(value) > limit:
        raise ParameterError(name, f"parameter {name!r} is longer than {limit} characters")
    if "\x00" in value:
        raise ParameterError(name, f"parameter {name!r} contains a NUL character")
    return value


def parse_currency(value: str | None, name: str = "currency") -> str:
    if value is None or value == "":
        raise ParameterError(name, f"parameter {name!r} is required")
    if value not in money.CURRENCIES:
        raise ParameterError(name, f"parameter {name!r}: unknown currency {value[:10]!r}")
    return value


@dataclass(frozen=True)
class OrderInput:
    currency: str
    amount_int: int
    return_success: str
    return_failure: str
    description: str = ""
    ipn: str = ""
    data: str = ""
    email: bool = False
    autosell: bool = False
    multipay: bool = False
    instant_only: bool = False
    # The parameter the amount came from ("amount_int" or legacy "amount").
    amount_param: str = "amount_int"


def _amount(form: FormData, currency: str) -> tuple[int, str]:
    amount_int_text = form.get("amount_int")
    amount_text = form.get("amount")
    if amount_int_text is not None and amount_text is not None:
        raise ParameterError("amount", "give either 'amount_int' or 'amount', not both")
    if amount_int_text is not None:
        if not _DIGITS.fullmatch(amount_int_text):
            raise ParameterError(
                "amount_int", "parameter 'amount_int' must be a positive integer (digits only)"
            )
        value = int(amount_int_text)
        if value <= 0:
            raise ParameterError("amount_int", "parameter 'amount_int' must be greater than zero")
        if value > money.MAX_AMOUNT_INT:
            raise ParameterError("amount_int", "parameter 'amount_int' is too large")
        return value, "amount_int"
    if amount_text is not None:
        try:
            return money.to_int(amount_text, currency), "amount"
        except AmountError as exc:
            raise ParameterError("amount", f"parameter 'amount': {exc}") from exc
    raise ParameterError("amount_int", "parameter 'amount_int' (or legacy 'amount') is required")


def parse_order(form: FormData) -> OrderInput:
    """The parameters of 1/generic/private/merchant/order/create, checked one by one."""
    currency = parse_currency(form.get("currency"))
    amount_int, amount_param = _amount(form, currency)
    return OrderInput(
        currency=currency,
        amount_int=amount_int,
        amount_param=amount_param,
        return_success=_url(form, "return_success", required=True),
        return_failure=_url(form, "return_failure", required=True),
        description=_text(form, "description", DESCRIPTION_MAX),
        ipn=_url(form, "ipn", required=False),
        data=_text(form, "data", DATA_MAX),
        email=_flag(form, "email"),
        autosell=_flag(form, "autosell"),
        multipay=_flag(form, "multipay"),
        instant_only=_flag(form, "instant_only"),
    )


@dataclass(frozen=True)
class HistoryInput:
    currency: str
    page: int = 1
    type: str | None = None
    date_start: datetime | None = None
    date_end: datetime | None = None
    trade_id: int | None = None


HISTORY_TYPES = ("in", "out", "earned", "spent", "fee", "deposit", "withdraw")


def _optional_int(form: FormData, name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not _DIGITS.fullmatch(value) or int(value) > money.MAX_AMOUNT_INT:
        raise ParameterError(name, f"parameter {name!r} must be a non-negative integer")
    return int(value)


def _optional_time(form: FormData, name: str) -> datetime | None:
    seconds = _optional_int(form, name)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ParameterError(name, f"parameter {name!r} is out of range") from exc


def parse_history(form: FormData) -> HistoryInput:
    """The parameters of 1/generic/private/wallet/history."""
    currency = parse_currency(form.get("currency"))
    kind = form.get("type") or None
    if kind is not None and kind not in HISTORY_TYPES:
        raise ParameterError("type", f"parameter 'type' must be one of {', '.join(HISTORY_TYPES)}")
    page = _optional_int(form, "page")
    if page is not None and page < 1:
        raise ParameterError("page", "parameter 'page' starts at 1")
    return HistoryInput(
        currency=currency,
        page=page or 1,
        type=kind,
        date_start=_optional_time(form, "date_start"),
        date_end=_optional_time(form, "date_end"),
        trade_id=_optional_int(form, "trade_id"),
    )
