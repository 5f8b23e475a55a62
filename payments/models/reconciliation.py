"""What reconciliation remembers: how far it read the ledger, and what each run found."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from payments.models.shops import Shop, default_shop_id


class LedgerCheckpoint(models.Model):
    """The last wallet-history entry reconciled, per shop and currency: the next run of
    that shop's ledger (its own gateway account's) starts after it."""

    shop = models.ForeignKey(
        Shop, on_delete=models.CASCADE, related_name="ledger_checkpoints", default=default_shop_id
    )
    currency = models.CharField(max_length=3)
    last_index = models.BigIntegerField(default=0)
    last_date = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "currency"], name="ledger_checkpoint_per_shop")
        ]

    def __str__(self) -> str:
        return f"{self.shop} {self.currency} after #{self.last_index}"


class ReconciliationRun(models.Model):
    """One run of a sweep (or of all of them) and what it found."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    sweep = models.CharField(max_length=32)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    counts = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    started = models.DateTimeField(default=timezone.now, db_index=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-started", "-id")
        # The dashboard reads the last run of each sweep.
        indexes = [models.Index(fields=["sweep", "started"], name="run_sweep_started")]

    def __str__(self) -> str:
        return f"{self.sweep} {self.started:%Y-%m-%d %H:%M} ({self.status})"
