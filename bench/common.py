"""What the benchmarks share: measuring a load phase, and counting a request's queries."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.load import LoadResult
from bench.servers import BenchError, PostgresMeter, Server, log


def payments_tables() -> tuple[str, ...]:
    """The payments app's tables, children first, for benchmarks that start from empty
    tables. Not the nonce tables: the gateway's nonce sequence must only go forward."""
    from payments import models as m

    models = (
        m.FlagReview,
        m.OrderFlag,
        m.OrderTransition,
        m.Notification,
        m.Payment,
        m.ShopEventAttempt,
        m.ShopEventDelivery,
        m.ShopEvent,
        m.IdempotencyKey,
        m.Order,
        m.ReconciliationRun,
        m.RejectedNotification,
        m.DashboardSummary,
    )
    return tuple(model._meta.db_table for model in models)


@dataclass
class Phase:
    """One load phase and the CPU every party spent during it."""

    name: str
    load: LoadResult
    server_cpu: float  # the measured server: gunicorn master + workers
    other_cpu: dict[str, float] = field(default_factory=dict)  # sandbox, postgres...

    def cpu_per_request_ms(self) -> float:
        return 1000 * self.server_cpu / self.load.ok if self.load.ok else float("nan")

    def summary(self) -> dict[str, Any]:
        out = self.load.summary()
        out["server_cpu_s"] = round(self.server_cpu, 3)
        out["server_cpu_per_request_ms"] = round(self.cpu_per_request_ms(), 3)
        for name, cpu in self.other_cpu.items():
            out[f"{name}_cpu_s"] = round(cpu, 3)
            if self.load.ok:
                out[f"{name}_cpu_per_request_ms"] = round(1000 * cpu / self.load.ok, 3)
        return out


def measure(
    name: str,
    server: Server,
    run: Callable[[], LoadResult],
    *,
    others: dict[str, Server] | None = None,
    postgres: PostgresMeter | None = None,
    allow_errors: bool = False,
) -> Phase:
    """Run one load phase between two CPU snapshots of every party.

    Raises BenchError when a request failed, unless `allow_errors` (an open
    loop, whose failures count as infinitely slow answers).
    """
    others = others or {}
    before = server.cpu()
    others_before = {key: s.cpu() for key, s in others.items()}
    pg_before = postgres.snapshot() if postgres else None
    load = run()
    if not allow_errors:
        require_success(name, load)
    pg_after = postgres.snapshot() if postgres else None
    other_cpu = {key: s.cpu().since(others_before[key]) for key, s in others.items()}
    server_cpu = server.cpu().since(before)
    pg = PostgresMeter.since(pg_after, pg_before)
    if pg is not None:
        other_cpu["postgres"] = pg
    return Phase(name, load, server_cpu, other_cpu)


def measure_side_by_side(
    name: str, runs: Mapping[str, tuple[Server, Callable[[], LoadResult]]]
) -> dict[str, Phase]:
    """Load several servers at the same time, each measured over the same interval.

    A machine whose speed drifts over seconds (a VM among neighbours) moves
    phases run one after the other apart by more than the difference between two
    views; servers loaded side by side share whatever the machine does. The
    callables run in threads (each drives its own generator processes); a failed
    request voids the round.
    """
    before = {key: server.cpu() for key, (server, _) in runs.items()}
    loads: dict[str, LoadResult] = {}
    failures: list[BaseException] = []

    def drive(key: str, run: Callable[[], LoadResult]) -> None:
        try:
            loads[key] = run()
        except BaseException as exc:  # reported below, in the benchmark's thread
            failures.append(exc)

    threads = [threading.Thread(target=drive, args=(key, run)) for key, (_, run) in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    phases = {}
    for key, (server, _) in runs.items():
        require_success(f"{name}: {key}", loads[key])
        phases[key] = Phase(f"{name}: {key}", loads[key], server.cpu().since(before[key]))
    return phases


def measure_round(
    name: str,
    server: Server,
    run: Callable[[], LoadResult],
    *,
    benchmark: str,
    others: dict[str, Server] | None = None,
    postgres: PostgresMeter | None = None,
) -> Phase:
    """A closed-loop phase after a pause (`wait_for_idle`), its progress logged."""
    wait_for_idle()
    phase = measure(name, server, run, others=others, postgres=postgres)
    log(f"{benchmark}: {progress(phase)}")
    return phase


def require_success(name: str, load: LoadResult) -> LoadResult:
    """A closed-loop phase measures the successful path: any failed request voids it."""
    if load.errors:
        raise BenchError(
            f"{name}: {load.errors} of {load.requests} requests failed, e.g. "
            + "; ".join(load.error_samples[:3])
        )
    return load


def combine(name: str, phases: list[Phase]) -> Phase:
    """Several rounds of one kind of phase as one (sums; latencies pooled)."""
    loads = [p.load for p in phases]
    load = LoadResult(
        requests=sum(x.requests for x in loads),
        ok=sum(x.ok for x in loads),
        errors=sum(x.errors for x in loads),
        elapsed=sum(x.elapsed for x in loads),
        latencies=[v for x in loads for v in x.latencies],
        generator_cpu_seconds=sum(x.generator_cpu_seconds for x in loads),
        error_samples=[s for x in loads for s in x.error_samples][:5],
        reconnects=sum(x.reconnects for x in loads),
        dropped=sum(x.dropped for x in loads),
        max_send_lag=max(x.max_send_lag for x in loads),
        machine_busy=sum(x.machine_busy for x in loads),
        sent_per_job=[sum(v) for v in zip(*(x.sent_per_job for x in loads), strict=True)],
    )
    other: Counter[str] = Counter()
    for p in phases:
        other.update(p.other_cpu)
    return Phase(
        name,
        load,
        sum(p.server_cpu for p in phases),
        dict(other),
    )


def progress(phase: Phase) -> str:
    load = phase.load
    return (
        f"{phase.name}: {load.ok} ok / {load.errors} errors in {load.elapsed:.2f} s "
        f"= {load.requests_per_second:.0f} req/s, server CPU {phase.cpu_per_request_ms():.2f} "
        f"ms/request, p50 {load.latency_ms().get('p50')} ms"
        + (f", {load.dropped} dropped" if load.dropped else "")
    )


# --- queries of one request, in this process (django.test.Client) --------------------


@dataclass
class QueryCount:
    statements: list[str] = field(default_factory=list)
    in_transaction: list[bool] = field(default_factory=list)
    commits: int = 0

    def summary(self) -> dict[str, Any]:
        kinds = Counter(sql.split(None, 1)[0].upper() for sql in self.statements)
        return {
            "statements": len(self.statements),  # BEGIN and COMMIT not included
            "by_kind": dict(kinds.most_common()),
            "commits": self.commits,  # of atomic blocks (each one waits for the WAL flush)
            # Each its own transaction (autocommit): reads, or writes committed one by one.
            "statements_outside_atomic": sum(1 for inside in self.in_transaction if not inside),
        }


@contextmanager
def counting_queries() -> Iterator[QueryCount]:
    """Every SQL statement the default connection runs, and its commits.

    BEGIN and COMMIT do not pass through cursors: commits are counted by
    wrapping `connection.commit`, and statements outside any atomic block are
    transactions of their own (autocommit).
    """
    from django.db import connections

    connection = connections["default"]
    count = QueryCount()

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        count.statements.append(sql)
        count.in_transaction.append(connection.in_atomic_block)
        return execute(sql, params, many, context)

    original_commit = connection.commit

    def commit() -> None:
        count.commits += 1
        original_commit()

    connection.commit = commit  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(wrapper):
            yield count
    finally:
        del connection.commit  # back to the class's method


def wait_for_idle(seconds: float = 0.3) -> None:
    """A pause between phases so that the last answers' work is not in the next phase."""
    time.sleep(seconds)
