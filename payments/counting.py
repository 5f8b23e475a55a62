"""Counts that stay cheap at any size: capped counts and PostgreSQL's table estimate.

Used by the admin's changelists (payments.admin.pagination) and the
dashboard's figures (payments.dashboard_figures), which must cost the same at
a million rows as at ten thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Model, QuerySet

COUNT_CAP = 1000


def table_estimate(model: type[Model]) -> int | None:
    """PostgreSQL's estimate of a table's rows (pg_class.reltuples); None elsewhere or unknown.

    Kept by ANALYZE and autovacuum: close, not exact, and costs one catalog lookup.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:  # -1: never analyzed
        return None
    return int(row[0])


def capped_count(queryset: QuerySet[Any], cap: int) -> int:
    """COUNT(*) over at most `cap` rows: exact below the cap, `cap` when there are more."""
    return queryset.order_by()[:cap].count()


@dataclass(frozen=True)
class Capped:
    """A count that may have hit its cap: shown as "1,000+"."""

    value: int
    cap: int

    @property
    def more(self) -> bool:
        return self.value >= self.cap

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.more else f"{self.value:,}"


def count_upto(queryset: QuerySet[Any], cap: int = COUNT_CAP) -> Capped:
    return Capped(capped_count(queryset, cap), cap)
