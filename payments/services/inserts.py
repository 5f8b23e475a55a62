"""INSERT ... ON CONFLICT in one statement, for rows that arrive more than once.

The ORM's get_or_create costs a SELECT, a savepoint, the INSERT and a
release (four round trips), and still needs the unique constraint to be
correct under concurrency. `INSERT ... ON CONFLICT` asks the constraint
directly in one statement, locks the existing row when it updates it, and
works the same on PostgreSQL and SQLite (3.35+).
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Model


def _columns_and_params(obj: Model) -> tuple[list[str], list[Any]]:
    meta = obj._meta
    columns, params = [], []
    for field in meta.local_concrete_fields:
        if field is meta.auto_field:
            continue
        value = field.pre_save(obj, add=True)  # defaults, auto_now
        columns.append(connection.ops.quote_name(field.column))  # type: ignore[arg-type]
        params.append(field.get_db_prep_save(value, connection))
    return columns, params


def insert_on_conflict(
    *, obj: Model, unique_field: str, on_conflict: str = "DO NOTHING", returning: tuple[str, ...]
) -> tuple[Any, ...] | None:
    """INSERT the unsaved `obj`; on a clash of `unique_field`, do `on_conflict` instead.

    Returns the `returning` columns of the row inserted or updated, or None
    when nothing was (DO NOTHING on a clash). `on_conflict` is trusted SQL
    from this package (e.g. a DO UPDATE SET naming `EXCLUDED` columns).
    """
    meta = obj._meta
    columns, params = _columns_and_params(obj)
    qn = connection.ops.quote_name

    def column(name: str) -> str:
        return qn(meta.get_field(name).column)  # type: ignore[union-attr, arg-type]

    # Only quoted identifiers from the model's metadata and this package's own SQL
    # are formatted in; every value is a parameter.
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({column(unique_field)}) {on_conflict} "
        f"RETURNING {', '.join(column(name) for name in returning)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return tuple(row) if row is not None else None
