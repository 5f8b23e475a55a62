"""Who applies the IPNs in ipn_throughput: the request, or a real Celery worker.

BENCH_IPN_APPLY=worker (the default) runs the service with PAYMENTS_IPN_APPLY=worker,
Redis as the broker (BENCH_BROKER_URL, emptied first) and one `celery worker`
(prefork x 2, the Procfile's) during every phase, as production would run it;
=request runs it as before (applied in the request, no worker). Either way the
database check waits (bounded) for nothing to be pending, and the time from
storing to applying of the open loop's IPNs is reported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.load import latency_summary
from bench.servers import CeleryProcess, CpuSnapshot, Infrastructure, log

MODES = ("worker", "request")
# The Procfile's worker: prefork x 2; BENCH_IPN_WORKER_CONCURRENCY tries another.
WORKER_CONCURRENCY = int(os.environ.get("BENCH_IPN_WORKER_CONCURRENCY", "2"))
DRAIN_TIMEOUT_SECONDS = 120.0


def apply_mode() -> str:
    mode = os.environ.get("BENCH_IPN_APPLY", "worker")
    if mode not in MODES:
        raise ValueError(f"BENCH_IPN_APPLY={mode!r}: use {' or '.join(MODES)}")
    return mode


@dataclass
class Appliers:
    """The service's environment for a mode, and its Celery worker (worker mode)."""

    env: dict[str, str]
    worker: CeleryProcess | None = None

    @property
    def by_worker(self) -> bool:
        return self.worker is not None

    def cpu(self) -> CpuSnapshot:
        """The worker's processes' CPU now (empty in request mode)."""
        return self.worker.cpu() if self.worker is not None else CpuSnapshot({})


@dataclass
class ApplyCost:
    """One closed-loop IPN phase, until everything it stored was applied."""

    ipns: int
    seconds: float  # the phase's, plus the wait until nothing was pending
    worker_cpu: float  # the worker's processes
    machine_cpu: float  # every process: load generator, web, PostgreSQL, worker, Redis


def apply_cost_summary(costs: Sequence[ApplyCost], floor: dict[str, Any] | None) -> dict[str, Any]:
    """What an IPN cost until it was applied: the worker's CPU and the whole machine's, and
    the machine's per request of the store-only floor (whose requests/s, on a saturated
    machine, they bound)."""
    ipns = sum(cost.ipns for cost in costs) or 1
    seconds = sum(cost.seconds for cost in costs) or 1.0
    machine_ms = 1000 * sum(cost.machine_cpu for cost in costs) / ipns
    out: dict[str, Any] = {
        "what": "each closed-loop IPN phase until nothing it stored was pending; machine CPU "
        "is every process's (/proc/stat): load generator, web, PostgreSQL, worker, Redis",
        "ipns": ipns,
        "seconds": round(seconds, 2),
        "stored_and_applied_per_s": round(ipns / seconds, 1),
        "worker_cpu_per_ipn_ms": round(1000 * sum(cost.worker_cpu for cost in costs) / ipns, 3),
        "machine_cpu_per_ipn_ms": round(machine_ms, 3),
    }
    if floor and floor.get("ok"):
        floor_ms = 1000 * floor["machine_busy_cores"] * floor["elapsed_s"] / floor["ok"]
        out["floor_machine_cpu_per_request_ms"] = round(floor_ms, 3)
        out["floor_to_ipn_machine_cpu"] = round(floor_ms / machine_ms, 3)
    return out


@contextmanager
def appliers(infra: Infrastructure, mode: str) -> Iterator[Appliers]:
    """The service's environment for `mode`, with its worker running (worker mode) until exit."""
    if mode == "request":
        yield Appliers({"PAYMENTS_IPN_APPLY": "request"})
        return
    env = {"PAYMENTS_IPN_APPLY": "worker", "CELERY_BROKER_URL": infra.prepare_broker()}
    worker = infra.start_worker("ipn-worker", concurrency=WORKER_CONCURRENCY, **env)
    try:
        yield Appliers(env, worker)
        wait_drained()
    finally:
        infra.stop_celery(worker)


def pending() -> int:
    from payments.models import Notification

    return Notification.objects.filter(outcome=Notification.Outcome.PENDING).count()


def wait_drained(timeout: float = DRAIN_TIMEOUT_SECONDS) -> float:
    """Wait until the worker applied every stored notification; seconds waited."""
    started = time.monotonic()
    while (left := pending()) and time.monotonic() - started < timeout:
        time.sleep(0.2)
    waited = round(time.monotonic() - started, 2)
    log(f"ipn_throughput: {left} notifications still pending after {waited:.1f} s")
    return waited


def store_to_applied(transactions: Sequence[str]) -> dict[str, Any]:
    """applied_at - received_at of these transactions' notifications, in ms: how long after
    [OK] (which follows received_at) the order showed the notification."""
    from payments.models import Notification

    gaps: list[float] = []
    for i in range(0, len(transactions), 1000):
        rows = Notification.objects.filter(
            transaction__in=transactions[i : i + 1000], applied_at__isnull=False
        ).values_list("received_at", "applied_at")
        gaps += [(applied - received).total_seconds() for received, applied in rows if applied]
    summary: dict[str, Any] = dict(latency_summary(gaps, unfinished=len(transactions) - len(gaps)))
    summary["n"] = len(transactions)
    return summary
