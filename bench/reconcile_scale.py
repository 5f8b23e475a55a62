"""Reconciliation at scale: the expiry sweep over 1,000,000 orders.

Two figures, same run, same machine:

- throughput: orders expired per second by the sweep (keyset chunks of 1000,
  SELECT ... FOR UPDATE SKIP LOCKED, one UPDATE, the transition rows and the
  shop events of each chunk) ÷ orders per second of a raw SQL
  `UPDATE payments_order ... FROM (VALUES ...)` of the same rows in chunks of
  the same size (target ≥ 0.5);
- memory: peak RSS (VmHWM) of the sweep process at 1,000,000 orders ÷ at
  100,000 (target ≤ 1.2): chunking keeps it flat.

The sweep runs in a fresh subprocess per size so that its peak RSS is its own.
Rows are seeded with PostgreSQL COPY (bulk_create on SQLite).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.servers import BenchError, Infrastructure, log
from payments.states import OrderStatus

FULL = {"small": 100_000, "large": 1_000_000}
QUICK = {"small": 20_000, "large": 200_000}
CHUNK = 1000

# Peak RSS is VmHWM of the sweep process itself: ru_maxrss would also count the
# parent's pages the child shared between fork and exec.
SWEEP_SCRIPT = """
import json, time
import django
django.setup()
from payments.services.sweeps import orders_expire_due
def status_kib(name):
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(name)).split()[1])
def rss_kib():
    return status_kib("VmRSS")
samples = []
def progress(rows):
    if len(samples) < 10000:
        samples.append(rss_kib())
started = time.perf_counter()
counts = orders_expire_due(chunk_size={chunk}, progress=progress)
elapsed = time.perf_counter() - started
peak_kib = status_kib("VmHWM")
rss = {{"first_chunk": samples[0], "last_chunk": samples[-1]}} if samples else {{}}
result = {{"expired": counts["expired"], "seconds": elapsed, "peak_rss_kib": peak_kib}}
print(json.dumps({{**result, **rss}}))
"""


def _truncate() -> None:
    from django.db import connection

    from payments.models import Order, OrderTransition, ShopEvent

    if connection.vendor == "postgresql":
        tables = ", ".join(m._meta.db_table for m in (OrderTransition, ShopEvent, Order))
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables} CASCADE")
    else:
        OrderTransition.objects.all().delete()
        Order.objects.all().delete()


def _template() -> tuple[list[str], dict[str, Any]]:
    """Every column of an order awaiting payment past its deadline, with the model's defaults."""
    from payments.models import Order

    deadline = datetime.now(UTC) - timedelta(hours=1)
    order = Order(
        reference="bench", amount_int=100_000, currency="BTC", status=OrderStatus.AWAITING_PAYMENT,
        deadline=deadline, created=deadline, updated=deadline,
    )  # fmt: skip
    fields = Order._meta.concrete_fields
    columns = [str(f.column) for f in fields]
    values = {column: getattr(order, f.attname) for column, f in zip(columns, fields, strict=True)}
    return columns, values


def _rows(count: int) -> Any:
    columns, template = _template()
    for n in range(count):
        row = {**template, "id": uuid.uuid4(), "reference": f"bench-{n}"}
        row["transaction"] = uuid.uuid4()
        yield tuple(row[column] for column in columns)


def seed(count: int) -> float:
    """Seed `count` orders awaiting payment past their deadline; returns seconds taken."""
    from django.db import connection, transaction

    from payments.models import Order

    _truncate()
    started = time.perf_counter()
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg's own cursor: COPY
            names = ", ".join(_template()[0])
            with raw.copy(f"COPY {Order._meta.db_table} ({names}) FROM STDIN") as copy:
                for row in _rows(count):
                    copy.write_row(row)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Order._meta.db_table}")
    else:
        columns = _template()[0]
        Order.objects.bulk_create(
            (Order(**dict(zip(columns, row, strict=True))) for row in _rows(count)),
            batch_size=5000,
        )
    return time.perf_counter() - started


def reset_to_awaiting() -> None:
    """Put the same rows back where they were (untimed), and clean up after them."""
    from django.db import connection

    from payments.models import Order, OrderTransition, ShopEvent

    order, transition = Order._meta.db_table, OrderTransition._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {order} SET status = %s", [OrderStatus.AWAITING_PAYMENT.value])
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {transition}, {ShopEvent._meta.db_table} CASCADE")
        else:
            cursor.execute(f"DELETE FROM {transition}")
    vacuum()


def vacuum() -> None:
    from django.db import connection

    from payments.models import Order

    if connection.vendor == "postgresql":
        old = connection.connection.autocommit
        connection.connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {Order._meta.db_table}")
        connection.connection.autocommit = old


def raw_update_baseline() -> float:
    """Seconds for UPDATE ... FROM (VALUES ...) of every due row, in chunks of CHUNK."""
    from django.db import connection, transaction

    from payments.models import Order

    table = Order._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE status = %s ORDER BY deadline, id",
            [OrderStatus.AWAITING_PAYMENT.value],
        )
        ids = [row[0] for row in cursor.fetchall()]
    chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    cast = "::uuid" if connection.vendor == "postgresql" else ""
    started = time.perf_counter()
    for chunk in chunks:
        values = ", ".join(["(%s)"] * len(chunk))
        sql = (
            f"UPDATE {table} SET status = %s, updated = CURRENT_TIMESTAMP "
            f"FROM (VALUES {values}) AS v(id) WHERE {table}.id = v.id{cast}"
        )
        params = [OrderStatus.EXPIRED.value, *(str(pk) if cast else pk.hex for pk in chunk)]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    return time.perf_counter() - started


def run_sweep(infra: Infrastructure) -> dict[str, Any]:
    out = infra.run_python(["-c", SWEEP_SCRIPT.format(chunk=CHUNK)], what="the sweep", timeout=1800)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def check_each_expired_once(count: int) -> dict[str, int]:
    from django.db.models import Count

    from payments.models import Order, OrderTransition

    left = Order.objects.filter(status=OrderStatus.AWAITING_PAYMENT).count()
    transitions = OrderTransition.objects.filter(to_status=OrderStatus.EXPIRED).count()
    doubled = (
        OrderTransition.objects.values("order").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    if left or transitions != count or doubled:
        raise BenchError(f"sweep result wrong: left={left} transitions={transitions}")
    return {"left_awaiting": left, "transitions": transitions, "orders_twice": doubled}


def measure_size(infra: Infrastructure, count: int) -> dict[str, Any]:
    log(f"seeding {count:,} due orders")
    seed_seconds = seed(count)
    vacuum()
    log(f"  seeded in {seed_seconds:.1f} s; raw UPDATE ... FROM (VALUES ...) baseline")
    baseline_seconds = raw_update_baseline()
    reset_to_awaiting()
    log(f"  baseline {count / baseline_seconds:,.0f} rows/s; the sweep")
    sweep = run_sweep(infra)
    checked = check_each_expired_once(count)
    log(f"  sweep {count / sweep['seconds']:,.0f} orders/s, peak RSS {sweep['peak_rss_kib']} KiB")
    return {
        "orders": count,
        "seed_s": round(seed_seconds, 2),
        "baseline_rows_per_s": round(count / baseline_seconds),
        "sweep_orders_per_s": round(count / sweep["seconds"]),
        "sweep_s": round(sweep["seconds"], 2),
        "peak_rss_kib": sweep["peak_rss_kib"],
        "rss_kib_after_first_chunk": sweep.get("first_chunk"),
        "rss_kib_after_last_chunk": sweep.get("last_chunk"),
        **checked,
    }


def run(infra: Infrastructure, quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    small = measure_size(infra, sizes["small"])
    large = measure_size(infra, sizes["large"])
    _truncate()
    throughput = large["sweep_orders_per_s"] / large["baseline_rows_per_s"]
    memory = large["peak_rss_kib"] / small["peak_rss_kib"]
    return {
        "ratio": round(throughput, 3),
        "target": "≥ 0.5 (sweep orders/s ÷ raw UPDATE FROM VALUES rows/s, at the large size)",
        "baseline": f"raw SQL UPDATE ... FROM (VALUES ...) of the same rows, chunks of {CHUNK}",
        "meets_target": throughput >= 0.5 and memory <= 1.2,
        "memory_ratio": round(memory, 3),
        "memory_target": f"≤ 1.2 (peak RSS at {sizes['large']:,} ÷ at {sizes['small']:,})",
        "measured": {"database": infra.database, "small": small, "large": large},
    }
