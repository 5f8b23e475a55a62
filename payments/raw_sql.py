"""SQL for the hottest statements, written with the ORM's own names and conversions.

A queryset's compilation costs more CPU than the statement it sends. Where a
statement runs once per request or per notification (the IPN batch's reads,
the transitions' INSERT, the order throttle's count), it is written here as
SQL over the models' tables and columns, its parameters prepared and its
values read back by the fields themselves: the same SQL on PostgreSQL and
SQLite, quoted by the connection, with no second copy of the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import Field, Model

_M = TypeVar("_M", bound=Model)


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def columns(model: type[Model]) -> list[str]:
    return [connection.ops.quote_name(str(field.column)) for field in model._meta.concrete_fields]


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(str(_field(model, name).column))


def prep(model: type[Model], name: str, value: Any) -> Any:
    """`value` as the database takes it for the field `name` (a UUID's hex on SQLite...)."""
    return _field(model, name).get_db_prep_value(value, connection)


def marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def rows_insert(model: type[Model], names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """`rows` (values in the order of `names`) by one INSERT, nothing read back: the ORM's
    bulk_create costs more CPU than a small row's round trip, and asks for the new ids.
    More rows than the database takes parameters in one statement go in as many as needed
    (its bulk_batch_size, as bulk_create splits them)."""
    fields = [_field(model, name) for name in names]
    prepared = [
        [
            field.get_db_prep_save(value, connection)
            for field, value in zip(fields, row, strict=True)
        ]
        for row in rows
    ]
    if not prepared:
        return
    one = f"({marks(len(fields))})"
    names_sql = ", ".join(column(model, name) for name in names)
    head = f"INSERT INTO {table(model)} ({names_sql}) VALUES "  # noqa: S608
    size = max(connection.ops.bulk_batch_size(fields, prepared), 1)
    with connection.cursor() as cursor:
        for start in range(0, len(prepared), size):
            batch = prepared[start : start + size]
            cursor.execute(head + ", ".join([one] * len(batch)), [v for row in batch for v in row])


def instances_read(model: type[_M], sql: str, params: Sequence[Any]) -> list[_M]:
    """Instances of `model` from `sql`, which selects `columns(model)`."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    make = RowReader(model)
    return [make(row) for row in rows]


def value_read(model: type[Model], name: str, sql: str, params: Sequence[Any]) -> Any:
    """The first row's one value of `sql`, which selects the field `name`; None for no row."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    field = _field(model, name)
    value = row[0]
    for converter, col in _converters(model, field):
        value = converter(value, col, connection)
    return value


class RowReader(Generic[_M]):
    """Instances of `model` from its concrete fields' raw column values, converted as the
    ORM converts them (UUIDs and decimals on SQLite, for one)."""

    def __init__(self, model: type[_M]) -> None:
        self.model = model
        self.names = [field.attname for field in model._meta.concrete_fields]
        self.converters: list[tuple[int, list[Any]]] = []
        for i, field in enumerate(model._meta.concrete_fields):
            found = _converters(model, field)
            if found:
                self.converters.append((i, found))

    def __call__(self, values: tuple[Any, ...]) -> _M:
        converted = list(values)
        for i, converters in self.converters:
            for converter, col in converters:
                converted[i] = converter(converted[i], col, connection)
        return self.model.from_db(connection.alias, self.names, converted)


def _converters(model: type[Model], field: Field[Any, Any]) -> list[tuple[Any, Any]]:
    col = field.get_col(model._meta.db_table)
    found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
    return [(converter, col) for converter in found]


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    return model._meta.get_field(name)  # type: ignore[return-value]
