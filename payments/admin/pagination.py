"""Changelist pagination that never counts a whole large table.

An unfiltered list takes PostgreSQL's estimate of the table
(pg_class.reltuples); a filtered or searched one counts at most `cap` + 1
rows ("10,000+"). Past an estimated or capped count only the first
`max_pages` pages are served: deep OFFSETs are slow, and a filter (date,
status) reaches older rows faster.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

from django.core.paginator import EmptyPage, Paginator
from django.db import connection
from django.db.models import QuerySet

from payments.counting import capped_count, table_estimate


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
