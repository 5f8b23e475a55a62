"""Health endpoints for probes and operators, each answering in milliseconds.

- GET /livez: the process is up and serving; no I/O at all. 200 {"status": "ok"}.
- GET /readyz (and its old name /healthz): the database answers (the query of the
  newest worker heartbeats, on an index), the broker accepts a connection (within
  HEALTH_BROKER_TIMEOUT_SECONDS, checked at most once per HEALTH_BROKER_CHECK_SECONDS),
  and a worker beat within HEALTH_WORKER_SEEN_SECONDS (merchant.heartbeat: no
  broadcast to the workers). 200 when all three hold, else 503.

Anonymous callers get the status and the three booleans; staff (a logged-in staff
session) also get each worker's hostname and last beat.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from merchant.celery import app as celery_app
from merchant.heartbeat import Beat, is_seen, newest_beats
from payments.conf import payments_settings

STAFF_WORKERS_SHOWN = 20  # the newest beats a staff member sees


def _broker_connects() -> bool:
    """A fresh connection to the broker, opened and closed, each step bounded by the timeout."""
    timeout = payments_settings.HEALTH_BROKER_TIMEOUT_SECONDS
    # connect_timeout bounds AMQP's connect and handshake; Redis reads its own two options.
    redis_timeouts = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    try:
        with celery_app.connection_for_write(
            connect_timeout=timeout, transport_options=redis_timeouts
        ) as conn:
            conn.ensure_connection(max_retries=0)  # no retry: one attempt, then the answer
        return True
    except Exception:  # whatever the transport raises, the broker is not usable
        return False


class _BrokerCheck:
    """The broker's state, checked at most once per HEALTH_BROKER_CHECK_SECONDS per process.

    A fresh broker connection costs milliseconds of CPU (and the broker a connection):
    a flood of /readyz must not cost that per request. One thread checks while the
    others answer with the last result; only the very first check is waited for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._ok = False

    def _fresh(self) -> bool:
        checked_at = self._checked_at
        return (
            checked_at is not None
            and time.monotonic() - checked_at < payments_settings.HEALTH_BROKER_CHECK_SECONDS
        )

    def __call__(self) -> bool:
        if self._fresh() or not self._lock.acquire(blocking=self._checked_at is None):
            return self._ok
        try:
            if not self._fresh():
                self._ok = _broker_connects()
                self._checked_at = time.monotonic()
        finally:
            self._lock.release()
        return self._ok


_broker_ok = _BrokerCheck()


def _beats(limit: int) -> list[Beat] | None:
    """The newest beats, or None when the database does not answer.

    This query is the database check too: it succeeds only when the database is
    reachable and migrated.
    """
    try:
        return newest_beats(limit)
    except DatabaseError:
        return None


def _is_staff(request: HttpRequest) -> bool:
    try:
        return bool(request.user.is_staff)
    except DatabaseError:  # the session or the user cannot be read: as anonymous
        return False


@require_safe
def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    staff = _is_staff(request)
    beats = _beats(STAFF_WORKERS_SHOWN if staff else 1)
    database = beats is not None
    broker = _broker_ok()
    now = timezone.now()
    worker = bool(beats and is_seen(beats[0], now))
    ready = database and broker and worker
    body: dict[str, Any] = {
        "status": "ok" if ready else "degraded",
        "database": database,
        "broker": broker,
        "worker": worker,
    }
    if staff:
        body["worker_seen_seconds"] = payments_settings.HEALTH_WORKER_SEEN_SECONDS
        body["workers"] = [
            {
                "hostname": beat.hostname,
                "last_beat": beat.beat_at.isoformat(),
                "seconds_ago": round((now - beat.beat_at).total_seconds(), 1),
                "seen": is_seen(beat, now),
            }
            for beat in beats or []
        ]
    response = JsonResponse(body, status=200 if ready else 503)
    # A 503 here is an answer, not a server error: Django would log every probe's as one.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
