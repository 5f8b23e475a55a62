"""CSV export of selected rows: streamed, money as decimal strings next to its currency.

Cells that a spreadsheet would run as a formula are quoted (CSV injection).
The columns of each export are here too, next to the row that fills them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db.models import Model
from django.http import StreamingHttpResponse
from django.utils import timezone

from payments import money
from payments.exceptions import UnknownCurrency
from payments.models import Notification, Order, Payment

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A CSV cell as text: datetimes in ISO 8601 (UTC), None empty, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_money(amount_int: int | None, currency: str) -> str:
    """A decimal string in the currency's units ("12.50000"); empty when unknown."""
    if amount_int is None or not currency:
        return ""
    try:
        return money.amount_text(amount_int, currency)
    except UnknownCurrency:
        return ""


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(
    *,
    filename: str,
    header: Sequence[str],
    rows: Iterable[Model],
    row: Callable[[Any], Sequence[Any]],
) -> StreamingHttpResponse:
    """Stream `rows` as CSV, one line per row, without building the file in memory."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for item in rows:
            yield writer.writerow([csv_cell(value) for value in row(item)])

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.csv"'
    return response


# --- the columns of each export -----------------------------------------------------

ORDER_CSV = (
    "id", "reference", "status", "amount", "currency", "amount_int", "open_flags",
    "transaction", "created", "deadline", "description",
)  # fmt: skip
PAYMENT_CSV = (
    "payment_id", "order_id", "order_reference", "status", "amount", "currency",
    "amount_int", "method", "source", "paid_at", "created",
)  # fmt: skip
NOTIFICATION_CSV = (
    "id", "received_at", "status", "transaction", "payment_id", "order_id",
    "outcome", "detail", "needs_review", "times_received", "applied_at",
)  # fmt: skip


def order_csv_row(o: Order) -> tuple[Any, ...]:
    return (
        o.pk, o.reference, o.status, csv_money(o.amount_int, o.currency), o.currency,
        o.amount_int, o.open_flags, o.transaction, o.created, o.deadline, o.description,
    )  # fmt: skip


def payment_csv_row(p: Payment) -> tuple[Any, ...]:
    return (
        p.payment_id, p.order_id, p.order.reference, p.status,
        csv_money(p.amount_int, p.currency), p.currency, p.amount_int, p.method,
        p.source, p.paid_at, p.created,
    )  # fmt: skip


def notification_csv_row(n: Notification) -> tuple[Any, ...]:
    return (
        n.pk, n.received_at, n.status, n.transaction, n.payment_id, n.order_id,
        n.outcome, n.detail, n.needs_review, n.times_received, n.applied_at,
    )  # fmt: skip
