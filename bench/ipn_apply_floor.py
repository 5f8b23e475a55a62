"""How cheap applying can get: the worker's drain against a set-based floor, per notification.

    .venv/bin/python -m bench.ipn_apply_floor [N]

Not part of `python -m bench`: the measurement behind issue 19's figure of what
applying costs. N fresh `paid` notifications for seeded orders are stored the
IPN view's way (`notification_store`), then applied in this process by

- `drain`: the worker's own code (`notifications_drain`: locked chunks of 20,
  each notification locked, paid, moved and recorded with the ORM);
- `set_floor`: the least any set-based apply of the same chunks does (raw SQL,
  PostgreSQL): one `SELECT ... FOR UPDATE SKIP LOCKED` of the chunk, one
  `SELECT ... FOR UPDATE` of its orders, one multi-row `INSERT` of the payments,
  one `UPDATE` of the orders, one multi-row `INSERT` of the transitions, one
  `UPDATE ... FROM (VALUES ...)` of the notifications, one COMMIT. No coverage
  check, no flags, no shop events, no signals: not a correct apply, a floor
  under every apply that writes what applying must write.

The two alternate (drain, floor, drain, floor). For each: this process's CPU
(`time.process_time`) and its PostgreSQL backend's (`/proc/<pid>/stat`) per
notification, and the statements per notification (counted on a separate small
batch, since counting costs CPU). The bench database and broker as elsewhere
(BENCH_DATABASE_URL; the database is dropped and created again).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from itertools import chain
from typing import Any

from bench.servers import Infrastructure, log, process_cpu_seconds

CHUNK = 20
REPEATS = 2
COUNTED = 40  # notifications of the batch whose statements are counted


def _store(n: int, prefix: str) -> None:
    """n fresh paid notifications, stored pending as the IPN view stores them."""
    from bench.ipn_throughput import paid_ipn, seed_orders
    from payments.services.notifications import notification_store
    from payments.shops import shop_default

    shop = shop_default()
    for order in seed_orders(n, prefix):
        body, headers = paid_ipn(*order)
        notification_store(shop=shop, body=body, headers=headers, remote_addr="127.0.0.1")


def drain() -> int:
    from payments.services.ipn_inbox import notifications_drain

    return notifications_drain(until=0)["examined"]


def _values(rows: list[tuple[Any, ...]], casts: str) -> tuple[str, list[Any]]:
    """`(%s::uuid, ...), (...)` for rows, and their parameters in one list."""
    row = f"({casts})"
    return ", ".join([row] * len(rows)), list(chain.from_iterable(rows))


def set_floor() -> int:
    """Apply every pending notification with the set-based statements (see the docstring)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from payments.notification_message import parse_notification

    applied = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, body FROM payments_notification WHERE outcome = 'pending' "
                "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                [CHUNK],
            )
            rows = cursor.fetchall()
            if not rows:
                return applied
            messages = [(pk, parse_notification(bytes(body))) for pk, body in rows]
            _write_chunk(cursor, messages, timezone.now())
        applied += len(rows)


def _write_chunk(cursor: Any, messages: list[tuple[int, Any]], now: Any) -> None:
    cursor.execute(
        "SELECT transaction, id FROM payments_order WHERE transaction = ANY(%s) FOR UPDATE",
        [[m.transaction for _, m in messages]],
    )
    order_of = dict(cursor.fetchall())
    payments = [
        (m.payment_id, order_of[m.transaction], m.amount_int, m.currency, m.paid_at, now, now)
        for _, m in messages
    ]
    sql, params = _values(payments, "%s::uuid, %s::uuid, %s, %s, %s, %s, %s")
    cursor.execute(
        "INSERT INTO payments_payment (payment_id, order_id, amount_int, currency, paid_at, "
        f"created, updated, status, method, source) SELECT *, 'paid', '', 'ipn' FROM (VALUES {sql})"
        " AS v ON CONFLICT (payment_id) DO NOTHING",
        params,
    )
    order_ids = [order_of[m.transaction] for _, m in messages]
    cursor.execute(
        "UPDATE payments_order SET status = 'paid', updated = %s WHERE id = ANY(%s)",
        [now, order_ids],
    )
    sql, params = _values([(pk, now) for pk in order_ids], "%s::uuid, %s")
    cursor.execute(
        "INSERT INTO payments_ordertransition (order_id, created, from_status, to_status, reason)"
        f" SELECT *, 'awaiting_payment', 'paid', 'IPN paid' FROM (VALUES {sql}) AS v",
        params,
    )
    outcomes = [(pk, m.transaction, m.payment_id, order_of[m.transaction]) for pk, m in messages]
    sql, params = _values(outcomes, "%s::bigint, %s::uuid, %s::uuid, %s::uuid")
    cursor.execute(
        "UPDATE payments_notification n SET outcome = 'applied', status = 'paid', "
        "detail = 'order paid', transaction = v.t, payment_id = v.p, order_id = v.o, "
        f"applied_at = %s FROM (VALUES {sql}) AS v(id, t, p, o) WHERE n.id = v.id",
        [now, *params],
    )


def _statements(apply: Callable[[], int], prefix: str) -> float:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _store(COUNTED, prefix)
    with CaptureQueriesContext(connection) as captured:
        applied = apply()
    return round(len(captured.captured_queries) / applied, 2)


def _measure(apply: Callable[[], int], n: int, prefix: str) -> dict[str, float]:
    from django.db import connection

    _store(n, prefix)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    cpu, pg = time.process_time(), process_cpu_seconds(backend)
    applied = apply()
    cpu, pg = time.process_time() - cpu, process_cpu_seconds(backend) - pg
    if applied != n:
        raise RuntimeError(f"{prefix}: applied {applied} of {n}")
    return {
        "python_cpu_ms": round(1000 * cpu / n, 3),
        "postgres_cpu_ms": round(1000 * pg / n, 3),
        "cpu_ms": round(1000 * (cpu + pg) / n, 3),
    }


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 1000
    appliers = {"drain": drain, "set_floor": set_floor}
    with Infrastructure():
        _store(100, "warm")
        drain()
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in appliers}
        for repeat in range(REPEATS):
            for name, apply in appliers.items():
                runs[name].append(_measure(apply, n, f"{name}-{repeat}"))
                log(f"ipn_apply_floor: {name}[{repeat}]: {runs[name][-1]} per notification")
        out = {
            name: {
                "per_notification": runs[name],
                "statements_per_notification": _statements(apply, f"{name}-count"),
            }
            for name, apply in appliers.items()
        }
    print(json.dumps({"notifications_per_run": n, "chunk": CHUNK, **out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
