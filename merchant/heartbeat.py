"""Worker heartbeats: each Celery worker records "<hostname> alive at <time>" in the database.

`HeartbeatStep` is a step of the worker's consumer (the part that talks to the
broker), registered on the app in `merchant.celery`. It beats once when the
consumer starts, then every HEALTH_WORKER_BEAT_SECONDS on the consumer's own
timer, the one Celery's event heartbeats use: the event loop with the Redis
and RabbitMQ brokers, a timer thread of the main process with the filesystem
broker. So a worker beats only while its consumer runs: when the broker
connection is lost the consumer restarts without beating, and a worker that
is stopped or killed stops beating. Only the main process beats; the prefork
pool's children never do (the Django fixup closes the database connection
they inherit).

`/readyz` (merchant.health) reads the newest beats with one query on the
`beat_at` index. The database rather than the cache: every process of the
service shares it whatever CACHE_URL says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import bootsteps
from django.db import close_old_connections
from django.utils import timezone

from payments.conf import payments_settings

logger = logging.getLogger(__name__)

# A worker that has not beaten for this long is forgotten (its row deleted) when any
# worker starts: hostnames that change with every deployment do not pile up.
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Beat:
    hostname: str
    beat_at: datetime


def record_beat(hostname: str) -> None:
    """Upsert this worker's row: one INSERT ... ON CONFLICT DO UPDATE."""
    from payments.models import WorkerHeartbeat

    WorkerHeartbeat.objects.bulk_create(
        [WorkerHeartbeat(hostname=hostname, beat_at=timezone.now())],
        update_conflicts=True,
        unique_fields=["hostname"],
        update_fields=["beat_at"],
    )


def forget_silent_workers() -> None:
    from payments.models import WorkerHeartbeat

    WorkerHeartbeat.objects.filter(beat_at__lt=timezone.now() - FORGET_AFTER).delete()


def _in_worker(work: Callable[..., None], *args: Any) -> None:
    """Database work in the worker's main process: a failure is logged, never raised."""
    try:
        work(*args)
    except Exception:  # the database is down: the next beat tries again
        logger.warning("worker heartbeat: %s failed", work.__name__, exc_info=True)
    finally:
        # No request ends in this process, so nothing else drops a broken or old connection.
        close_old_connections()


def newest_beats(limit: int) -> list[Beat]:
    """The `limit` most recent beats, newest first (raises when the database is down)."""
    from payments.models import WorkerHeartbeat

    rows = WorkerHeartbeat.objects.order_by("-beat_at").values_list("hostname", "beat_at")
    return [Beat(hostname, beat_at) for hostname, beat_at in rows[:limit]]


def is_seen(beat: Beat, now: datetime) -> bool:
    return now - beat.beat_at <= timedelta(seconds=payments_settings.HEALTH_WORKER_SEEN_SECONDS)


class HeartbeatStep(bootsteps.StartStopStep):
    """A consumer step: beat at start, then every HEALTH_WORKER_BEAT_SECONDS until stopped."""

    # Once the consumer consumes from its task queues (and before its event loop starts).
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_entry: Any = None

    def start(self, parent: Any) -> None:
        _in_worker(forget_silent_workers)
        _in_worker(record_beat, parent.hostname)
        self.timer_entry = parent.timer.call_repeatedly(
            payments_settings.HEALTH_WORKER_BEAT_SECONDS, _in_worker, (record_beat, parent.hostname)
        )

    def stop(self, parent: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop
