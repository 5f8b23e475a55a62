"""What the service reads from the database when Prometheus scrapes (events: payments.metrics).

**State** (orders per status, the shop-event backlog, notifications waiting,
the last run of each sweep) is read at scrape time by `DatabaseCollector`,
with index lookups and the dashboard's summary row (never a table scan):
every machine reports the same figures (use `max`). Apart from
payments.metrics because it reads models and services, which count events
there themselves (the gateway client, shop events, sweeps).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from payments.conf import payments_settings
from payments.dashboard_figures import dashboard_summary_get
from payments.models import (
    Notification,
    ReconciliationRun,
    ShopEventDelivery,
    WebhookEndpoint,
)
from payments.services.dashboard_summary import (
    SUMMARY_MAX_AGE_SECONDS,
    dashboard_summary_request_refresh,
)


class DatabaseCollector(Collector):
    """Gauges read from the database when Prometheus scrapes (registered per scrape)."""

    def collect(self) -> Iterator[Any]:
        yield from _orders()
        yield from _shop_events()
        yield from _notifications_waiting()
        yield from _last_sweep_runs()


def _orders() -> Iterator[GaugeMetricFamily]:
    """Orders per status from the dashboard's summary row, kept fresh in the background."""
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
    # Both read the index shop_event_delivery_due (delivered_at, given_up_at,
    # next_attempt_at). The deliveries of a disabled endpoint wait on purpose: not a backlog.
    undelivered = ShopEventDelivery.objects.filter(delivered_at__isnull=True).order_by()
    enabled = WebhookEndpoint.objects.filter(enabled=True).values("pk")
    pending = undelivered.filter(given_up_at__isnull=True, endpoint__in=enabled).aggregate(
        n=Count("pk"), oldest_due=Min("next_attempt_at")
    )
    yield GaugeMetricFamily(
        "merchant_shop_events_backlog",
        "Shop event deliveries to enabled endpoints not delivered yet and still retried",
        value=pending["n"],
    )
    overdue = 0.0
    if pending["oldest_due"] is not None:
        overdue = max(0.0, (timezone.now() - pending["oldest_due"]).total_seconds())
    yield GaugeMetricFamily(
        "merchant_shop_events_overdue_seconds",
        "How long the most overdue pending shop event delivery has been due (0: none)",
        value=overdue,
    )
    yield GaugeMetricFamily(
        "merchant_shop_events_given_up",
        "Shop event deliveries given up after the retry window (until sent again from the admin)",
        value=undelivered.filter(given_up_at__isnull=False).count(),
    )


def _notifications_waiting() -> Iterator[GaugeMetricFamily]:
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
    for sweep in payments_settings.PAYMENTS_SWEEP_SECONDS:
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
