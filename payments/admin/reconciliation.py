"""The record of reconciliation: each sweep's runs and the ledger's checkpoints (read-only).

Both are of the whole service (a sweep walks every shop's orders): superusers only.
"""

from __future__ import annotations

from django.contrib import admin

from payments.admin.base import ReadOnlyAdmin, SuperuserOnlyAdmin
from payments.admin.filters import SweepFilter
from payments.admin.pagination import EstimatedCountPaginator
from payments.models import LedgerCheckpoint, ReconciliationRun


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(SuperuserOnlyAdmin, ReadOnlyAdmin):
    list_display = ("started", "sweep", "status", "dry_run", "counts", "finished")
    list_filter = (SweepFilter, "status", "dry_run")
    readonly_fields = ("sweep", "status", "dry_run", "counts", "error", "started", "finished")
    paginator = EstimatedCountPaginator
    show_full_result_count = False


@admin.register(LedgerCheckpoint)
class LedgerCheckpointAdmin(SuperuserOnlyAdmin, ReadOnlyAdmin):
    list_display = ("currency", "last_index", "last_date", "updated")
    readonly_fields = ("currency", "last_index", "last_date", "updated")
