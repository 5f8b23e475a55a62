"""Celery beat safe to start on every node: only the holder of a lease in the database schedules.

`LeaseScheduler` (settings.CELERY_BEAT_SCHEDULER) is Celery's PersistentScheduler
behind a lease: one row of `payments_beatlease` names the beat process that holds
it and until when, by the database's clock. Every beat tries to take or renew it
every BEAT_LEASE_SECONDS / 3; only the holder sends tasks, and it sends each one
only after a write that succeeds only while it still holds an unexpired lease
(the write also records when the entry ran and extends the lease). So:

- two beats never both send: the database orders the holder's last successful
  write before another beat's taking of the lease, which needs the lease expired;
- a beat that is killed, hangs, or loses the database stops renewing, and
  another takes over within BEAT_LEASE_SECONDS plus one retry (at once on a
  clean stop, which gives the lease up);
- the new holder reads when each entry last ran from the row, so a takeover
  neither repeats an entry nor skips one: each runs once per period.

The one window left is a holder that is frozen for longer than the lease between
its write and its publish to the broker; every scheduled task here tolerates one
extra run (the sweeps claim their rows).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Q
from django.db.models.functions import Now

from payments.conf import payments_settings

logger = logging.getLogger(__name__)

LEASE_NAME = "beat"
# What an unheld lease's expiry is set to: long past by any clock.
RELEASED = datetime(2000, 1, 1, tzinfo=UTC)


class BeatLeaseStore:
    """The lease row, read and written with one statement each, on the database's clock."""

    def __init__(self, *, holder: str, seconds: float, name: str = LEASE_NAME) -> None:
        self.holder = holder
        self.name = name
        self.duration = timedelta(seconds=seconds)

    def _rows(self) -> Any:
        from payments.models import BeatLease

        return BeatLease.objects.filter(name=self.name)

    def take(self) -> dict[str, str] | None:
        """Take the lease if it is free or ours, extending it; the entries' last runs, or None."""
        from payments.models import BeatLease

        BeatLease.objects.bulk_create(
            [BeatLease(name=self.name, expires_at=RELEASED)], ignore_conflicts=True
        )
        taken = (
            self._rows()
            .filter(Q(holder=self.holder) | Q(expires_at__lt=Now()))
            .update(holder=self.holder, expires_at=Now() + self.duration)
        )
        if not taken:
            return None
        # Nobody else writes the row while we hold it: this read sees what we took.
        last_runs: dict[str, str] = self._rows().values_list("last_runs", flat=True).get()
        return last_runs

    def record(self, last_runs: dict[str, str]) -> bool:
        """Store the entries' last runs and extend the lease, while it is ours and unexpired."""
        return bool(
            self._rows()
            .filter(holder=self.holder, expires_at__gt=Now())
            .update(last_runs=last_runs, expires_at=Now() + self.duration)
        )

    def release(self) -> None:
        self._rows().filter(holder=self.holder).update(expires_at=RELEASED)


class LeaseScheduler(PersistentScheduler):
    """PersistentScheduler that sends only while it holds the beat lease (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        seconds = float(payments_settings.BEAT_LEASE_SECONDS)
        holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = BeatLeaseStore(holder=holder, seconds=seconds)
        # Renew (or, waiting, try to take) the lease three times per lease: one lost
        # write or a slow database does not lose it.
        self.lease_check_every = seconds / 3
        self.holding = False
        self._last_check = float("-inf")
        self._last_runs: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self.holding and time.monotonic() - self._last_check < self.lease_check_every:
            return min(super().tick(*args, **kwargs), self.lease_check_every)
        self._last_check = time.monotonic()
        last_runs = self._database(self.lease.take)
        if last_runs is None:
            if self.holding:
                logger.warning("beat: lost the lease; waiting to take it again")
            self.holding = False
            return self.lease_check_every
        if not self.holding:
            logger.info("beat: holding the lease (%s); scheduling", self.lease.holder)
            self._adopt(last_runs)
            self.holding = True
        return min(super().tick(*args, **kwargs), self.lease_check_every)

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        # tick() has already advanced the entry (reserve); this is the time it runs.
        ran_at = self.schedule[entry.name].last_run_at
        last_runs = {**self._last_runs, entry.name: _iso(ran_at)}
        if not self._database(lambda: self.lease.record(last_runs)):
            logger.warning("beat: not holding the lease; %s not sent", entry.name)
            self.holding = False
            return
        self._last_runs = last_runs
        super().apply_entry(entry, producer=producer)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.holding:
                self._database(self.lease.release)  # another beat takes over at once
                self.holding = False

    def _adopt(self, last_runs: dict[str, str]) -> None:
        """Take the last runs from the row (the previous holder's), not from this beat's file."""
        self._last_runs = dict(last_runs)
        for name, entry in self.schedule.items():
            if name in last_runs:
                entry.last_run_at = datetime.fromisoformat(last_runs[name])
        self._heap = None  # rebuilt from the entries at the next tick
        self._do_sync()

    def _database(self, operation: Any) -> Any:
        """Run one lease statement; a database error counts as not holding the lease."""
        close_old_connections()
        try:
            return operation()
        except DatabaseError as exc:
            logger.warning("beat: lease check failed: %s", exc)
            connection.close()  # a fresh connection next time
            return None


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # Celery's now() is aware with enable_utc; keep it so
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
