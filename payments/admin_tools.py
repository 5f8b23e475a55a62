"""Pieces of the review admin that keep it fast at millions of rows, and the CSV export.

- `EstimatedCountPaginator`: no full COUNT(*) on a changelist. An unfiltered
  list takes PostgreSQL's estimate of the table (pg_class.reltuples); a
  filtered or searched one counts at most `cap` + 1 rows ("10,000+"). Past an
  estimated or capped count only the first `max_pages` pages are served: deep
  OFFSETs are slow, and a filter (date, status) reaches older rows faster.
- List filters with fixed choices (no SELECT DISTINCT over a whole table),
  each backed by an index.
- `csv_response`: selected rows as CSV, streamed, money as decimal strings
  with the currency, cells that a spreadsheet would run as a formula quoted.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import EmptyPage, Paginator
from django.db import connection
from django.db.models import Model, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from payments import money
from payments.dashboard import capped_count, table_estimate


class EstimatedCountPaginator(Paginator):
    """A changelist paginator that never counts a whole large table."""

    cap = 10_000
    max_pages = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count_is_estimate = False
        self.count_is_capped = False

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return len(rows)
        if not rows.query.where and not rows.query.distinct:
            estimate = table_estimate(rows.model)
            if estimate is not None and estimate > self.cap:
                self.count_is_estimate = True
                return estimate
            if connection.vendor != "postgresql":
                return rows.count()  # SQLite (development): a normal count
        found = capped_count(rows, self.cap + 1)
        if found > self.cap:
            self.count_is_capped = True
        return found

    @property
    def approximate(self) -> bool:
        _ = self.count
        return self.count_is_estimate or self.count_is_capped

    def validate_number(self, number: Any) -> int:
        number = super().validate_number(number)
        if self.approximate and number > self.max_pages:
            raise EmptyPage(f"only the first {self.max_pages} pages; filter to see older rows")
        return number

    def get_elided_page_range(
        self, number: int | float | str = 1, *, on_each_side: int = 3, on_ends: int = 2
    ) -> Iterator[str | int]:
        if not self.approximate:
            yield from super().get_elided_page_range(
                number, on_each_side=on_each_side, on_ends=on_ends
            )
            return
        current = self.validate_number(number)
        last = min(self.num_pages, self.max_pages, current + on_each_side)
        start = max(1, current - on_each_side)
        if start > on_ends + 1:
            yield from range(1, on_ends + 1)
            yield str(self.ELLIPSIS)
        else:
            start = 1
        yield from range(start, last + 1)
        if last < min(self.num_pages, self.max_pages):
            yield str(self.ELLIPSIS)

    def describe_count(self) -> str:
        """'1,234', 'about 1,000,000' or 'more than 10,000'."""
        count = self.count
        if self.count_is_estimate:
            return f"about {count:,}"
        if self.count_is_capped:
            return f"more than {self.cap:,}"
        return f"{count:,}"


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter on one indexed column with choices known in advance (no DISTINCT scan)."""

    field_name = ""
    options: Sequence[tuple[str, str]] = ()

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, str]]:
        return self.options

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in {key for key, _ in self.options}:
            return queryset.filter(**{self.field_name: value})
        return queryset


class CurrencyFilter(FixedChoicesFilter):
    title = "currency"
    parameter_name = "currency"
    field_name = "currency"
    options = [(code, code) for code in money.CURRENCIES]


class NotificationStatusFilter(FixedChoicesFilter):
    title = "status"
    parameter_name = "status"
    field_name = "status"
    options = [(s, s) for s in ("paid", "partial", "cancelled", "closed")]


class RejectionReasonFilter(FixedChoicesFilter):
    title = "reason"
    parameter_name = "reason"
    field_name = "reason"
    options = [
        (r, r.replace("_", " ")) for r in ("unknown_key", "missing_signature", "bad_signature")
    ]


class SweepFilter(FixedChoicesFilter):
    title = "sweep"
    parameter_name = "sweep"
    field_name = "sweep"
    options = [(s, s) for s in ("apply_pending", "expire", "stuck", "ledger")]


class OrderFlaggedFilter(admin.SimpleListFilter):
    """Orders with a flag nobody has reviewed (Order.open_flags, a partial index)."""

    title = "flagged"
    parameter_name = "flagged"
    prefix = ""  # "order__" for models that reach the order through a foreign key

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes: needs review"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case "yes":
                return queryset.filter(**{f"{self.prefix}open_flags__gt": 0})
            case "no":
                return queryset.filter(**{f"{self.prefix}open_flags": 0})
        return queryset


class PaymentOrderFlaggedFilter(OrderFlaggedFilter):
    prefix = "order__"


class FlagOpenFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Open"), ("no", "Reviewed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case "yes":
                return queryset.filter(reviewed_at__isnull=True)
            case "no":
                return queryset.filter(reviewed_at__isnull=False)
        return queryset


def as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


# --- CSV export ---------------------------------------------------------------------

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
        return format(money.to_decimal(amount_int, currency), "f")
    except money.UnknownCurrency:
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
