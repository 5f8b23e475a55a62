"""Read the fields of an IPN body: strict, typed, never a float.

Only called on bodies whose signature was verified. A body that is
authentic but malformed raises InvalidNotification naming the problem.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from payments.choices import IpnStatus
from payments.exceptions import InvalidNotification
from payments.money import CURRENCIES, MAX_AMOUNT_INT

_DIGITS = re.compile(r"[0-9]{1,19}")
MAX_FIELDS = 32  # a notification has about ten
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, kw_only=True)
class NotificationMessage:
    transaction: uuid.UUID
    payment_id: uuid.UUID
    status: str
    data: str | None = None
    amount_int: int | None = None  # paid
    currency: str | None = None
    method: str | None = None
    paid_at: datetime | None = None
    amount_pending: int | None = None  # partial
    amount_valid: int | None = None
    amount_total: int | None = None


def _uuid(fields: dict[str, str], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(fields[name])
    except KeyError:
        raise InvalidNotification(f"missing field {name!r}") from None
    except ValueError:
        raise InvalidNotification(f"field {name!r} is not a uuid") from None


def _amount(fields: dict[str, str], name: str) -> int:
    text = fields.get(name)
    if text is None:
        raise InvalidNotification(f"missing field {name!r}")
    if not _DIGITS.fullmatch(text) or int(text) > MAX_AMOUNT_INT:
        raise InvalidNotification(f"field {name!r} is not an integer amount")
    return int(text)


def _date(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidNotification("field 'date' is not YYYY-MM-DD HH:MM:SS") from None


def parse_notification(body: bytes) -> NotificationMessage:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidNotification("the body is not UTF-8 form data") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InvalidNotification("a field appears more than once")
    status = fields.get("status", "")
    if status not in IpnStatus.values:
        raise InvalidNotification(f"unknown status {status[:32]!r}")
    transaction, payment_id = _uuid(fields, "id"), _uuid(fields, "payment_id")
    data = fields.get("data")
    if status == IpnStatus.PARTIAL:
        return NotificationMessage(
            transaction=transaction,
            payment_id=payment_id,
            status=status,
            data=data,
            amount_pending=_amount(fields, "amount_pending"),
            amount_valid=_amount(fields, "amount_valid"),
            amount_total=_amount(fields, "amount_total"),
        )
    if status == IpnStatus.PAID:
        currency = fields.get("currency", "")
        if currency not in CURRENCIES:
            raise InvalidNotification(f"unknown currency {currency[:8]!r}")
        return NotificationMessage(
            transaction=transaction,
            payment_id=payment_id,
            status=status,
            data=data,
            amount_int=_amount(fields, "amount"),
            currency=currency,
            method=fields.get("method", "")[:32],
            paid_at=_date(fields.get("date")),
        )
    return NotificationMessage(
        transaction=transaction, payment_id=payment_id, status=status, data=data
    )


def ids_as_sent(body: bytes) -> tuple[str | None, str | None]:
    """The transaction and status fields of an authentic body, unchecked: a fraction of
    parse_notification's cost (the IPN view's log line)."""
    try:
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=MAX_FIELDS))
    except ValueError:
        return None, None
    return fields.get("id", "")[:64] or None, fields.get("status", "")[:32] or None
