"""Walking many rows in locked chunks, each in its own transaction.

The sweeps (payments.services.sweeps) and the shop events' redelivery
(payments.services.shop_events) share one way of taking work from a table
that several workers on several machines may sweep at once: a chunk at a
time, in keyset order, its rows claimed with `SELECT ... FOR UPDATE SKIP
LOCKED`. No row is done twice, a worker killed mid-chunk loses only its
uncommitted chunk (its locks go with its connection), and memory stays flat
however many rows there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import Model, Q, QuerySet

Row = TypeVar("Row", bound=Model)


def locked_chunks(
    rows: QuerySet[Row],
    *,
    size: int,
    order: Sequence[str] = ("pk",),
    limit: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> Iterator[list[Row]]:
    """Yield `rows` by chunks of at most `size`, in `order`, each locked in its own transaction.

    The caller's work on a chunk (the body of its loop) runs inside that
    chunk's transaction, which commits when the loop asks for the next chunk
    or ends; an exception in the body, or leaving it early with `break`,
    rolls the chunk back. `order` must be unique (end it with "pk"): the
    next chunk starts after the last row of this one. At most `limit` rows
    in all; `progress(n)` after each chunk's commit. Rows another worker
    holds are skipped where the database can (SQLite: one writer at a time
    already).
    """
    taken = 0
    after: tuple[Any, ...] | None = None
    while limit is None or taken < limit:
        wanted = size if limit is None else min(size, limit - taken)
        with transaction.atomic():
            page = rows.order_by(*order)
            if after is not None:
                page = page.filter(_after(order, after))
            if connection.features.has_select_for_update_skip_locked:
                page = page.select_for_update(skip_locked=True)
            chunk = list(page[:wanted])
            if not chunk:
                return
            yield chunk
        after = tuple(getattr(chunk[-1], field) for field in order)
        taken += len(chunk)
        if progress:
            progress(len(chunk))


def _after(order: Sequence[str], last: tuple[Any, ...]) -> Q:
    """Rows after `last` in keyset `order`: (a > x) or (a = x and b > y) ..."""
    condition = Q()
    for position, field in enumerate(order):
        equal = {name: value for name, value in zip(order[:position], last, strict=False)}
        step = Q(**equal, **{f"{field}__gt": last[position]})
        condition = step if position == 0 else condition | step
    return condition
