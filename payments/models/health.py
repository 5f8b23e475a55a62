"""Worker heartbeats: what GET /readyz reads to tell whether a Celery worker is alive."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """The last beat of each Celery worker (by its hostname, e.g. `celery@web-1`).

    Written only by `merchant.heartbeat` from the worker's main process, read by
    `merchant.health` through the index on `beat_at` (the newest beat first).
    """

    hostname = models.CharField(max_length=255, unique=True)
    beat_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "worker heartbeat"

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
