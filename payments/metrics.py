"""What the service counts for Prometheus (served by merchant.metrics at /metrics).

Two kinds, each where it is right with many processes on many machines:

- **Events** (counters, the gateway's latency histogram) happen in whichever
  process does the work: a gunicorn worker, a Celery pool process. They are
  counted in memory-mapped files under PROMETHEUS_MULTIPROC_DIR
  (prometheus-client's multiprocess mode), which a scrape of any web process
  of the machine adds up. Each machine reports its own processes' events;
  Prometheus scrapes every machine and sums (`sum without (instance)`).
- **State** (orders per status, the shop-event backlog, notifications waiting,
  the last run of each sweep) is read from the database at scrape time by
  `DatabaseCollector`, with index lookups and the dashboard's summary row
  (never a table scan): every machine reports the same figures (use `max`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


# --- State, from the database at scrape time ------------------------------------------


class DatabaseCollector(Collector):
    """Gauges read from the database when Prometheus scrapes (registered per scrape)."""

    def collect(self) -> Iterator[Any]:
        yield from _orders()
        yield from _shop_events()
        yield from _notifications_waiting()
        yield from _last_sweep_runs()


def _orders() -> Iterator[GaugeMetricFamily]:
    """Orders per status from the dashboard's summary row, kept fresh in the background."""
    from payments.dashboard_figures import dashboard_summary_get
    from payments.services.dashboard_summary import (
        SUMMARY_MAX_AGE_SECONDS,
        dashboard_summary_request_refresh,
    )

    summary = dashboard_summary_get()
    age = (timezone.now() - summary.computed_at).total_seconds() if summary else None
    if age is None or age > SUMMARY_MAX_AGE_SECONDS:
        dashboard_summary_request_refresh()
    if summary is None:
        return
    orders = GaugeMetricFamily(
        "merchant_orders",
        "Orders per status (as of merchant_orders_age_seconds)",
        labels=["status"],
    )
    for status, n in sorted(summary.orders_by_status.items()):
        orders.add_metric([status], n)
    yield orders
    yield GaugeMetricFamily(
        "merchant_orders_age_seconds", "Age of the merchant_orders figures", value=age
    )


def _shop_events() -> Iterator[GaugeMetricFamily]:
    from payments.models import ShopEvent

    # Both read the index shop_event_due (delivered_at, given_up_at, next_attempt_at).
    undelivered = ShopEvent.objects.filter(delivered_at__isnull=True).order_by()
    pending = undelivered.filter(given_up_at__isnull=True).aggregate(
        n=Count("pk"), oldest_due=Min("next_attempt_at")
    )
    yield GaugeMetricFamily(
        "merchant_shop_events_backlog",
        "Shop events not delivered yet and still retried",
        value=pending["n"],
    )
    overdue = 0.0
    if pending["oldest_due"] is not None:
        overdue = max(0.0, (timezone.now() - pending["oldest_due"]).total_seconds())
    yield GaugeMetricFamily(
        "merchant_shop_events_overdue_seconds",
        "How long the most overdue pending shop event has been due (0: none)",
        value=overdue,
    )
    yield GaugeMetricFamily(
        "merchant_shop_events_given_up",
        "Shop events given up after the retry window (until sent again from the admin)",
        value=undelivered.filter(given_up_at__isnull=False).count(),
    )


def _notifications_waiting() -> Iterator[GaugeMetricFamily]:
    from payments.models import Notification

    Outcome = Notification.Outcome
    waiting = GaugeMetricFamily(
        "merchant_notifications_unapplied",
        "Stored notifications not applied yet (pending) or whose applying failed (error)",
        labels=["outcome"],
    )
    counts = dict(
        Notification.objects.filter(outcome__in=[Outcome.PENDING, Outcome.ERROR])
        .order_by()
        .values_list("outcome")
        .annotate(n=Count("pk"))
    )
    for outcome in (Outcome.PENDING, Outcome.ERROR):
        waiting.add_metric([outcome.value], counts.get(outcome.value, 0))
    yield waiting


def _last_sweep_runs() -> Iterator[GaugeMetricFamily]:
    from django.conf import settings

    from payments.models import ReconciliationRun

    started = GaugeMetricFamily(
        "merchant_sweep_last_run_timestamp_seconds",
        "When the last run of each sweep started (unix time)",
        labels=["sweep", "status"],
    )
    findings = GaugeMetricFamily(
        "merchant_sweep_last_run_findings",
        "What the last finished run of each sweep found, by kind",
        labels=["sweep", "kind"],
    )
    for sweep in settings.PAYMENTS_SWEEP_SECONDS:
        # One row through the index run_sweep_started.
        run = (
            ReconciliationRun.objects.filter(sweep=sweep, dry_run=False)
            .order_by("-started")
            .first()
        )
        if run is None:
            continue
        started.add_metric([sweep, run.status], run.started.timestamp())
        for kind, n in sorted(run.counts.items()):
            findings.add_metric([sweep, kind], n)
    yield started
    yield findings
