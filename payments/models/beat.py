"""The beat lease: which Celery beat process schedules, and when each entry last ran."""

from __future__ import annotations

from django.db import models


class BeatLease(models.Model):
    """One row per lease name (`beat`): its holder, until when, and the entries' last runs.

    Written only by `merchant.beat.BeatLeaseStore`; the times are the database's clock,
    so the machines' clocks do not matter.
    """

    name = models.CharField(max_length=64, unique=True)
    holder = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField()
    # {"<schedule entry name>": "<ISO 8601 time it was last sent>"}, kept by the holder.
    last_runs = models.JSONField(default=dict)

    class Meta:
        verbose_name = "beat lease"

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or '-'} until {self.expires_at:%Y-%m-%d %H:%M:%S}"
