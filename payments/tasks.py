"""Celery tasks of the payments app: thin; they take ids and call one service.

Every task may run more than once (acks_late redelivery, a sweep and a retry
racing) and is idempotent: the services claim their work with conditional
updates or row locks, so a duplicate finds nothing to do. Work is enqueued
after the commit that created it (`transaction.on_commit`); when the broker
is down, the beat sweeps below find what was not enqueued.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError

from merchant.delivery import retry_if_soon
from payments.gateway.errors import GatewayUnavailable
from payments.services import ipn_inbox, shop_events
from payments.services.dashboard_summary import dashboard_summary_refresh
from payments.services.runs import reconciliation_run

# --- Shop events --------------------------------------------------------------
#
# Design: each event has a delivery per endpoint (ShopEventDelivery), and each
# delivery is a task of its own: an endpoint that fails never holds up another.
# The first attempt is enqueued after the commit that recorded the event. A
# failed attempt whose next one is due within
# CELERY_MAX_COUNTDOWN_SECONDS re-enqueues the same task with `self.retry(
# countdown=...)`; a later one is only kept in the database (next_attempt_at),
# never held by the broker, which would keep an unacknowledged message past
# RabbitMQ's consumer timeout or Redis's visibility timeout. The database, not
# the broker, is the truth: `redeliver_shop_events` (beat, every 60 s)
# enqueues deliveries overdue by more than a minute, which covers those long
# retries, a lost first enqueue (broker down), a retry lost with a worker, a
# retry whose publish failed and an attempt killed at its time limit. A
# duplicate task is harmless: the attempt's conditional UPDATE (claim) lets one
# through and skips a delivery that is delivered, given up, not due or to a
# disabled endpoint, so acks_late is safe. Deliveries migrated from before
# endpoints (0007) kept their event's id, so a task queued then still finds its row.

_ATTEMPT_SOFT_LIMIT, _ATTEMPT_HARD_LIMIT = shop_events.attempt_time_limits()
# A sweep's chunk (at most 100 rows, then a publish each) takes well under a second.
_SWEEP_SOFT_LIMIT, _SWEEP_HARD_LIMIT = 60, 90


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=None,
    ignore_result=True,
    soft_time_limit=_ATTEMPT_SOFT_LIMIT,
    time_limit=_ATTEMPT_HARD_LIMIT,
)
def deliver_shop_event(self: Any, delivery_id: str) -> str:
    """One attempt of a shop event's delivery to one endpoint; on failure, again when the
    backoff says."""
    outcome = shop_events.shop_event_deliver(delivery_id=delivery_id)
    retry_if_soon(self, outcome.retry_in)
    return outcome.result  # a later retry waits in the database for the sweep


@shared_task(
    acks_late=True,
    ignore_result=True,
    soft_time_limit=_SWEEP_SOFT_LIMIT,
    time_limit=_SWEEP_HARD_LIMIT,
)
def redeliver_shop_events(grace_seconds: float | None = None) -> int:
    """Sweep: enqueue undelivered deliveries overdue by the grace (0: all those due now)."""
    if grace_seconds is None:
        return len(shop_events.shop_events_redeliver_due())
    return len(shop_events.shop_events_redeliver_due(grace_seconds=grace_seconds))


# --- Reconciliation sweeps ------------------------------------------------------
#
# Beat runs each sweep on the schedule of PAYMENTS_SWEEP_SECONDS; `run_sweep`
# can also be called on demand. Sweeps claim their rows chunk by chunk with
# SKIP LOCKED, so the same sweep on several workers at once, or one redelivered
# after its worker died (acks_late), does no row twice. A run stopped at its time
# limit (a ledger sweep behind a gateway that answers slowly, a huge backlog)
# keeps every chunk it committed; the next run carries on. Its retries stay
# short countdowns: beat runs the sweep again anyway.


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(DatabaseError, GatewayUnavailable),
    retry_backoff=5,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=600,
    time_limit=660,
)
def run_sweep(sweep: str, chunk_size: int | None = None) -> dict[str, int]:
    """Run one sweep by name (apply_pending, expire, stuck, ledger) and record it."""
    if chunk_size:
        return reconciliation_run(sweep=sweep, chunk_size=chunk_size).counts
    return reconciliation_run(sweep=sweep).counts


# --- IPNs applied by a worker (PAYMENTS_IPN_APPLY=worker) ----------------------
#
# Published (debounced) by the IPN view after it stored a notification; it applies
# every pending one, chunk by chunk with SKIP LOCKED, so wakes running at once on
# several workers, or one redelivered (acks_late), apply nothing twice. A lost wake
# is the apply_pending sweep's.


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def apply_notifications(until: float) -> int:
    """Apply stored IPNs until none is pending after `until` (a Unix time); how many."""
    return ipn_inbox.notifications_drain(until=until)["examined"]


# --- The admin dashboard --------------------------------------------------------
#
# Queued by the dashboard when its summary is older than a minute (at most one at
# a time); two refreshes racing only write the rows twice (per-shop rows are
# upserted on their shop, the rows of all shops are read newest first).


@shared_task(acks_late=True, ignore_result=True)
def refresh_dashboard_summary() -> int:
    """Recompute the dashboard's summary figures; returns how long it took (ms)."""
    return dashboard_summary_refresh().duration_ms
