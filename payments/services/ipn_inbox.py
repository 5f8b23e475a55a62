"""Who applies a verified IPN: the request that stores it, or a worker (PAYMENTS_IPN_APPLY).

"request" (the default): `notification_receive` stores and applies in one
transaction before the view answers `[OK]`; nothing else need be running.

"worker" (the inbox pattern): the request only stores the notification (one
INSERT ... ON CONFLICT, committed) and answers `[OK]`; a Celery worker applies
it just after, with the sweep's code (`notifications_apply_pending`: chunks
locked with SKIP LOCKED on PostgreSQL, one writer at a time on SQLite), so
each notification is applied once whoever finds it.

Waking the worker costs a publish to the broker, so each web process
publishes at most one wake per WAKE_WINDOW_SECONDS, after the commit. The task
(`notifications_drain`) keeps applying until a whole scan (not cut by its
limit) that started later than its publish time + the window +
DRAIN_MARGIN_SECONDS: a notification whose wake was skipped inside the window
was committed before that scan, which takes it. A wake lost with the broker
(down, a worker killed) is the `apply_pending` sweep's (PAYMENTS_SWEEP_SECONDS),
which applies what is still pending a minute after it was stored (at its next
run: within about two minutes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from django.db import transaction

from payments.choices import IpnApply
from payments.conf import payments_settings
from payments.models import Notification, Shop
from payments.services.notifications import notification_receive, notification_store
from payments.services.sweeps import notifications_apply_pending

logger = logging.getLogger(__name__)

# A wake is a task for a worker to run; the drain it starts takes what comes meanwhile.
WAKE_WINDOW_SECONDS = 0.25
# Covers the clocks of the web and worker hosts (NTP keeps them within milliseconds).
DRAIN_MARGIN_SECONDS = 0.25
# Between passes that found less than a chunk: a chunk's statements cost the same for 5
# notifications as for 50, so letting more gather costs less CPU each (bench/README.md).
DRAIN_IDLE_SECONDS = 0.1
DRAIN_MAX_SECONDS = 30.0  # under steady load, later wakes carry on
DRAIN_CHUNK = 50  # one commit per chunk: the orders show their state at that commit
DRAIN_PASS_CHUNKS = 10  # a pass ends after this many chunks, so the time bound is checked
BROKER_DOWN_PAUSE_SECONDS = 5.0  # no request pays the publish timeout more often
# Two quick tries, as the shop events' publish: the request never waits long for the broker.
WAKE_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2}

_wake_lock = threading.Lock()
_next_wake = 0.0  # time.monotonic() before which this process publishes no wake


def notification_accept(
    *, shop: Shop, body: bytes, headers: dict[str, str], remote_addr: str | None
) -> Notification:
    """Store a verified notification, committed, and apply it (request) or have it applied
    (worker): what the IPN view does before `[OK]`. Raises as `notification_receive`."""
    if payments_settings.PAYMENTS_IPN_APPLY != IpnApply.WORKER:
        return notification_receive(shop=shop, body=body, headers=headers, remote_addr=remote_addr)
    notification = notification_store(
        shop=shop, body=body, headers=headers, remote_addr=remote_addr
    )
    if notification.outcome == Notification.Outcome.PENDING:
        transaction.on_commit(notifications_wake, robust=True)
    return notification


def notifications_wake() -> bool:
    """Publish a drain task unless this process did within the window; never raises."""
    global _next_wake
    now = time.monotonic()
    with _wake_lock:
        if now < _next_wake:
            return False
        _next_wake = now + WAKE_WINDOW_SECONDS
    if _publish(until=time.time() + WAKE_WINDOW_SECONDS + DRAIN_MARGIN_SECONDS):
        return True
    with _wake_lock:
        _next_wake = time.monotonic() + BROKER_DOWN_PAUSE_SECONDS
    return False


def _publish(*, until: float) -> bool:
    from payments.tasks import apply_notifications

    try:
        apply_notifications.apply_async(args=[until], retry=True, retry_policy=WAKE_RETRY_POLICY)
    except Exception as exc:  # the broker is down: the notification is stored, the sweep applies
        logger.warning(
            "IPN worker not woken (%s); the apply_pending sweep will apply what is stored",
            type(exc).__name__,
        )
        return False
    return True


def notifications_drain(*, until: float) -> Counter[str]:
    """Apply pending notifications until a whole scan begun after `until` (time.time()).

    Such a scan took every notification committed before it began, `until`'s
    included, but those another drain holds (SKIP LOCKED), which that drain
    applies; a scan cut short by its limit did not. Stopping there, not when a
    scan finds nothing, ends every wake soon after its `until` under a steady
    stream too: later notifications are their own wakes' (or the window's).
    """
    counts: Counter[str] = Counter()
    stop_at = time.monotonic() + DRAIN_MAX_SECONDS
    limit = DRAIN_CHUNK * DRAIN_PASS_CHUNKS
    while time.monotonic() < stop_at:
        began = time.time()
        # Failed ones (outcome error) are the sweep's: retried here they would never end.
        found = notifications_apply_pending(
            older_than_seconds=0, chunk_size=DRAIN_CHUNK, include_failed=False, limit=limit
        )
        counts.update(found)
        if began >= until and found["examined"] < limit:
            break
        if found["examined"] >= DRAIN_CHUNK:
            continue  # a backlog: on at once
        # A pass costs statements of its own (the chunks' SELECT and COMMIT): wait for a few
        # notifications to gather rather than take them one by one.
        time.sleep(DRAIN_IDLE_SECONDS)
    return counts
