"""PostgreSQL behind a pooler in transaction mode (`DATABASE_POOLER=transaction`).

A transaction pooler (PgBouncer `pool_mode = transaction`, most managed poolers)
lends a server connection for one transaction at a time. So nothing may be set
for the session: PgBouncer refuses the `options` startup parameter that sets
`lock_timeout` on a direct connection, and a session-level `SET` would stay on a
server connection that the next transaction, anyone's, gets.

`SET LOCAL` lasts until the transaction ends, and the pooler keeps one server
connection for the whole transaction: `lock_timeout_first` sends it as the first
statement of every transaction this process opens (one more statement per
transaction), so every transaction that may wait on a lock gives up after
DATABASE_LOCK_TIMEOUT_MS, whoever opened it. Statements in autocommit run
without it: docs/deploy.md, "PgBouncer", sets a default for the role instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import pq

from payments.conf import payments_settings

TRANSACTION = "transaction"
POOLERS = ("", TRANSACTION)


def lock_timeout_sql() -> str:
    return f"SET LOCAL lock_timeout = {int(payments_settings.DATABASE_LOCK_TIMEOUT_MS)}"


def lock_timeout_first(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """An execute wrapper: `SET LOCAL lock_timeout` before a transaction's first statement.

    Django opens a transaction by leaving autocommit; psycopg sends BEGIN with the
    next statement, so a connection still IDLE inside an atomic block has not begun.
    The SET goes through the cursor (and this wrapper again, which lets it pass) so
    that it is logged and counted like any other statement.
    """
    db = context["connection"]
    if db.in_atomic_block and db.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        first = lock_timeout_sql()
        if sql != first:
            context["cursor"].execute(first)
    return execute(sql, params, many, context)


def install_lock_timeout(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """`connection_created` receiver: wrap every PostgreSQL connection when pooled.

    First in the list, the outermost wrapper: a `connection.execute_wrapper()` block
    entered before the connection opened pops its own (the last) when it ends.
    """
    if (
        payments_settings.DATABASE_POOLER == TRANSACTION
        and connection.vendor == "postgresql"
        and lock_timeout_first not in connection.execute_wrappers
    ):
        connection.execute_wrappers.insert(0, lock_timeout_first)
