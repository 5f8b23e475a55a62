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

from payments.gateway.errors import GatewayUnavailable
from payments.services import webhooks
from payments.services.dashboard import dashboard_summary_refresh
from payments.services.runs import reconciliation_run

# --- Shop webhooks ------------------------------------------------------------
#
# Design: the first attempt is enqueued after the commit that recorded the
# event; a failed attempt re-enqueues the same task with `self.retry(countdown=
# seconds until next_attempt_at)`, so retries follow the backoff without
# polling. The database, not the broker, is the truth: every event keeps
# next_attempt_at, and `redeliver_shop_events` (beat, every 60 s) re-enqueues
# events overdue by more than a minute, which covers a lost first enqueue
# (broker down), a retry lost with a worker, and a retry whose publish failed.
# A duplicate task is harmless: the attempt's conditional UPDATE (claim) lets
# one through and skips an event that is delivered, given up or not due, so
# acks_late is safe. (With Redis, a countdown longer than the visibility
# timeout may be delivered twice; the claim makes that a no-op too.)


@shared_task(bind=True, acks_late=True, max_retries=None, ignore_result=True)
def deliver_shop_event(self: Any, event_id: str) -> str:
    """One delivery attempt of a shop event; on failure, again when the backoff says."""
    outcome = webhooks.shop_event_deliver(event_id=event_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=max(outcome.retry_in, 0.0))
    return outcome.result


@shared_task(acks_late=True, ignore_result=True)
def redeliver_shop_events() -> int:
    """Sweep: enqueue undelivered shop events whose next attempt is overdue."""
    return len(webhooks.shop_events_redeliver_due())


# --- Reconciliation sweeps ------------------------------------------------------
#
# Beat runs each sweep on the schedule of PAYMENTS_SWEEP_SECONDS; `run_sweep`
# can also be called on demand. Sweeps claim their rows chunk by chunk with
# SKIP LOCKED, so the same sweep on several workers at once, or one redelivered
# after its worker died (acks_late), does no row twice.


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(DatabaseError, GatewayUnavailable),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def run_sweep(sweep: str, chunk_size: int | None = None) -> dict[str, int]:
    """Run one sweep by name (apply_pending, expire, stuck, ledger) and record it."""
    if chunk_size:
        return reconciliation_run(sweep=sweep, chunk_size=chunk_size).counts
    return reconciliation_run(sweep=sweep).counts


# --- The admin dashboard --------------------------------------------------------
#
# Queued by the dashboard when its summary is older than a minute (at most one at
# a time); the summary is one row, so two refreshes racing only write it twice.


@shared_task(acks_late=True, ignore_result=True)
def refresh_dashboard_summary() -> int:
    """Recompute the dashboard's summary figures; returns how long it took (ms)."""
    return dashboard_summary_refresh().duration_ms
