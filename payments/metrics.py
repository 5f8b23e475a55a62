"""What the service counts for Prometheus (served by merchant.metrics at /metrics).

Two kinds, each where it is right with many processes on many machines:

- **Events** (counters, the gateway's latency histogram) happen in whichever
  process does the work: a gunicorn worker, a Celery pool process. They are
  counted in memory-mapped files under PROMETHEUS_MULTIPROC_DIR
  (prometheus-client's multiprocess mode), which a scrape of any web process
  of the machine adds up. Each machine reports its own processes' events;
  Prometheus scrapes every machine and sums (`sum without (instance)`).
- **State** (orders per status, the shop-event backlog, notifications waiting,
  the last run of each sweep) is read from the database at scrape time:
  payments.metrics_state (apart, so that this module imports nothing of the
  app and everything may count here).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# --- Events -------------------------------------------------------------------------

IPN_NOTIFICATIONS = Counter(
    "merchant_ipn_notifications",
    "Authentic notifications received, by what applying them did",
    ["outcome"],
)
IPN_REJECTED = Counter(
    "merchant_ipn_rejected",
    "Requests to the IPN endpoint refused before parsing, by reason",
    ["reason"],
)
GATEWAY_CALLS = Counter(
    "merchant_gateway_calls",
    "HTTP calls to the gateway, by method and HTTP status (or timeout, error)",
    ["method", "status"],
)
GATEWAY_CALL_SECONDS = Histogram(
    "merchant_gateway_call_duration_seconds",
    "Time to the gateway's answer (or failure), by method",
    ["method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
SHOP_EVENT_DELIVERIES = Counter(
    "merchant_shop_event_deliveries",
    "Delivery attempts of shop events, by result (delivered, failed, given_up)",
    ["result"],
)
SWEEP_RUNS = Counter(
    "merchant_sweep_runs", "Reconciliation sweep runs, by sweep and status", ["sweep", "status"]
)
SWEEP_FINDINGS = Counter(
    "merchant_sweep_findings",
    "What reconciliation sweeps found or did, by sweep and kind",
    ["sweep", "kind"],
)


def gateway_call_observed(method: str, status: str, seconds: float) -> None:
    """The gateway client's observer (payments.gateway_factory)."""
    GATEWAY_CALLS.labels(method=method, status=status).inc()
    GATEWAY_CALL_SECONDS.labels(method=method).observe(seconds)


def sweep_run_counted(sweep: str, status: str, counts: dict[str, int]) -> None:
    SWEEP_RUNS.labels(sweep=sweep, status=status).inc()
    for kind, n in counts.items():
        if n:
            SWEEP_FINDINGS.labels(sweep=sweep, kind=kind).inc(n)
