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
from typing import Any

from bench.load import latency_summary
from bench.servers import Infrastructure, log

MODES = ("worker", "request")
# The Procfile's worker: prefork x 2; BENCH_IPN_WORKER_CONCURRENCY tries another.
WORKER_CONCURRENCY = int(os.environ.get("BENCH_IPN_WORKER_CONCURRENCY", "2"))
DRAIN_TIMEOUT_SECONDS = 120.0


def apply_mode() -> str:
    mode = os.environ.get("BENCH_IPN_APPLY", "worker")
    if mode not in MODES:
        raise ValueError(f"BENCH_IPN_APPLY={mode!r}: use {' or '.join(MODES)}")
    return mode


@contextmanager
def appliers(infra: Infrastructure, mode: str) -> Iterator[dict[str, str]]:
    """The service's environment for `mode`, with its worker running (worker mode) until exit."""
    if mode == "request":
        yield {"PAYMENTS_IPN_APPLY": "request"}
        return
    env = {"PAYMENTS_IPN_APPLY": "worker", "CELERY_BROKER_URL": infra.prepare_broker()}
    worker = infra.start_worker("ipn-worker", concurrency=WORKER_CONCURRENCY, **env)
    try:
        yield env
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
