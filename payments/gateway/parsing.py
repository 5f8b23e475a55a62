"""From the gateway's JSON replies to typed results, refusing anything malformed.

JSON numbers with a fraction become Decimal (parse_float), never float;
NaN and Infinity literals are refused. Every refusal is a
GatewayProtocolError naming the field, never echoing a long value.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

from payments.gateway.errors import GatewayProtocolError, GatewayRejected
from payments.gateway.results import (
    AccountInfo,
    CurrencyInfo,
    OrderCreated,
    Ticker,
    ValueObject,
    Wallet,
    WalletEntry,
    WalletHistoryPage,
)

_INTEGER = re.compile(r"-?[0-9]{1,30}")
# JSON's number syntax, also inside strings: "0E-8" is what str(Decimal) writes for 0 BTC.
_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?(?:[eE][-+]?[0-9]{1,3})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_TICKER_FIELDS = (
    "high", "low", "avg", "vwap", "vol",
    "last_all", "last_local", "last_orig", "last", "buy", "sell",
)  # fmt: skip

T = TypeVar("T")


def _invalid(detail: str) -> NoReturn:
    raise GatewayProtocolError(detail)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def decode_reply(status: int, content: bytes) -> Any:
    """The `return` value of a success envelope; GatewayRejected for an error envelope."""
    try:
        envelope = json.loads(content, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise GatewayProtocolError(f"the reply is not JSON (HTTP {status})", status=status) from exc
    if not isinstance(envelope, dict):
        raise GatewayProtocolError("the reply is not a JSON object", status=status)
    result = envelope.get("result")
    if result == "success":
        if not 200 <= status < 300 or "return" not in envelope:
            detail = f"a success reply without return (HTTP {status})"
            raise GatewayProtocolError(detail, status=status)
        return envelope["return"]
    if result == "error":
        message, token = envelope.get("error"), envelope.get("token")
        if not isinstance(message, str) or not isinstance(token, str | None):
            raise GatewayProtocolError("an error reply without a message", status=status)
        raise GatewayRejected(message, token=token or None, status=status)
    raise GatewayProtocolError(f"unknown result {str(result)[:40]!r}", status=status)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _invalid(f"{where} is not an object")
    return value


def _field(obj: dict[str, Any], name: str, where: str, read: Callable[[Any, str], T]) -> T:
    if name not in obj:
        _invalid(f"{where}.{name} is missing")
    return read(obj[name], f"{where}.{name}")


def _optional(
    obj: dict[str, Any], name: str, where: str, read: Callable[[Any, str], T]
) -> T | None:
    # Gateways write "" for an unknown optional value (a Last_Login that never happened).
    return None if obj.get(name) in (None, "") else read(obj[name], f"{where}.{name}")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _invalid(f"{where} is not a string")
    return value


def _int(value: Any, where: str) -> int:
    """An int, or a string of digits as the gateway writes `value_int` and counts."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    _invalid(f"{where} is not an integer")


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    _invalid(f"{where} is not a decimal number")


def _uuid(value: Any, where: str) -> uuid.UUID:
    try:
        return uuid.UUID(_str(value, where))
    except ValueError:
        _invalid(f"{where} is not a uuid")


def _currency(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        _invalid(f"{where} is not a currency code")
    return value


def _yes_no(value: Any, where: str) -> bool:
    if value in ("Y", "N"):
        return bool(value == "Y")
    _invalid(f"{where} is not Y or N")


def _unix_time(value: Any, where: str) -> datetime:
    seconds = _int(value, where)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        _invalid(f"{where} is not a valid time")


def _date_time(value: Any, where: str) -> datetime:
    """Unix seconds, or text such as `2012-10-13 12:55:45` (UTC when no offset is given)."""
    if isinstance(value, int):
        return _unix_time(value, where)
    try:
        parsed = datetime.fromisoformat(_str(value, where))
    except ValueError:
        _invalid(f"{where} is not a date")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        _invalid(f"{where} is not a list")
    return tuple(_str(item, f"{where}[{i}]") for i, item in enumerate(value))


def value_object(data: Any, where: str = "return") -> ValueObject:
    obj = _object(data, where)
    return ValueObject(
        value=_field(obj, "value", where, _decimal),
        value_int=_field(obj, "value_int", where, _int),
        display=_field(obj, "display", where, _str),
        currency=_field(obj, "currency", where, _currency),
    )


def order_created(data: Any) -> OrderCreated:
    obj = _object(data, "return")
    payment_url = _field(obj, "payment_url", "return", _str)
    if not payment_url.startswith(("https://", "http://")):
        _invalid("return.payment_url is not an http(s) URL")
    return OrderCreated(
        transaction=_field(obj, "transaction", "return", _uuid), payment_url=payment_url
    )


def ticker(data: Any) -> Ticker:
    obj = _object(data, "return")
    return Ticker(**{name: _field(obj, name, "return", value_object) for name in _TICKER_FIELDS})


def currency_info(data: Any) -> CurrencyInfo:
    obj = _object(data, "return")
    return CurrencyInfo(
        currency=_field(obj, "currency", "return", _currency),
        name=_field(obj, "name", "return", _str),
        symbol=_field(obj, "symbol", "return", _str),
        decimals=_field(obj, "decimals", "return", _int),
        virtual=_field(obj, "virtual", "return", _yes_no),
        display=_optional(obj, "display", "return", _str),
        symbol_position=_optional(obj, "symbol_position", "return", _str),
    )


def _wallet(data: Any, where: str) -> Wallet:
    obj = _object(data, where)
    return Wallet(
        balance=_field(obj, "Balance", where, value_object),
        operations=_field(obj, "Operations", where, _int),
    )


def account_info(data: Any) -> AccountInfo:
    obj = _object(data, "return")
    wallets = _field(obj, "Wallets", "return", _object)
    return AccountInfo(
        login=_field(obj, "Login", "return", _str),
        id=_field(obj, "Id", "return", _uuid),
        rights=_field(obj, "Rights", "return", _string_list),
        wallets=MappingProxyType(
            {
                _currency(code, "return.Wallets"): _wallet(wallet, f"return.Wallets.{code}")
                for code, wallet in wallets.items()
            }
        ),
        index=_optional(obj, "Index", "return", _int),
        language=_optional(obj, "Language", "return", _str),
        created=_optional(obj, "Created", "return", _date_time),
        last_login=_optional(obj, "Last_Login", "return", _date_time),
        trade_fee=_optional(obj, "Trade_Fee", "return", _decimal),
    )


def _wallet_entry(data: Any, where: str) -> WalletEntry:
    obj = _object(data, where)
    return WalletEntry(
        index=_field(obj, "Index", where, _int),
        date=_field(obj, "Date", where, _unix_time),
        type=_field(obj, "Type", where, _str),
        value=_field(obj, "Value", where, value_object),
        balance=_field(obj, "Balance", where, value_object),
        info=_field(obj, "Info", where, _str),
        link=_optional(obj, "Link", where, _string_list) or (),
    )


def wallet_history_page(data: Any) -> WalletHistoryPage:
    obj = _object(data, "return")
    entries = _field(obj, "result", "return", lambda value, where: value)
    if not isinstance(entries, list):
        _invalid("return.result is not a list")
    return WalletHistoryPage(
        records=_field(obj, "records", "return", _int),
        entries=[_wallet_entry(item, f"return.result[{i}]") for i, item in enumerate(entries)],
        current_page=_field(obj, "current_page", "return", _int),
        max_page=_field(obj, "max_page", "return", _int),
        max_results=_field(obj, "max_results", "return", _int),
    )
