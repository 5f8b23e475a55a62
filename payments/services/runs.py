"""Run a sweep by name and keep a record of what it found (for the admin and the commands)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from payments.choices import Sweep
from payments.metrics import sweep_run_counted
from payments.models import ReconciliationRun
from payments.services.reconciliation import ledgers_reconcile
from payments.services.sweeps import (
    notifications_apply_pending,
    orders_expire_due,
    orders_flag_stuck,
)

SweepFunction = Callable[..., Counter[str]]

SWEEPS: dict[str, SweepFunction] = {
    Sweep.APPLY_PENDING: notifications_apply_pending,
    Sweep.EXPIRE: orders_expire_due,
    Sweep.STUCK: orders_flag_stuck,
    Sweep.LEDGER: ledgers_reconcile,  # every shop's ledger, each with its own account
}


def reconciliation_run(
    *,
    sweep: str,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
    **options: Any,
) -> ReconciliationRun:
    """Run one sweep, recorded as a ReconciliationRun (failed runs too, then re-raised)."""
    run = ReconciliationRun.objects.create(sweep=sweep, dry_run=dry_run)
    try:
        counts = SWEEPS[sweep](dry_run=dry_run, progress=progress, **options)
    except Exception as exc:
        run.status = ReconciliationRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:2000]
        run.finished = timezone.now()
        run.save(update_fields=["status", "error", "finished"])
        if not dry_run:
            sweep_run_counted(sweep, run.status, {})
        raise
    run.counts = dict(counts)
    run.status = ReconciliationRun.Status.DONE
    run.finished = timezone.now()
    run.save(update_fields=["counts", "status", "finished"])
    if not dry_run:
        sweep_run_counted(sweep, run.status, run.counts)
    return run
