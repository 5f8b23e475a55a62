"""One attempt to deliver a stored message by POST: the engine of both outboxes.

The service's shop events (payments.services.shop_events) and the sandbox
gateway's IPNs (sandbox.services) are each a row that holds the exact bytes
to send and three columns this engine works on: `attempts`, `delivered_at`
and `next_attempt_at`. `attempt_once` claims the row with a conditional
UPDATE (two workers never send one attempt twice; a delivered row is never
sent again), lets the caller POST it (`post`: time-bounded, the answer read
up to a bound, an error described without the URL), then hands the reply to
the caller to record the attempt and schedule what comes next, in one
transaction, and to report it once committed. No transaction is held during
the POST. `retry_if_soon` puts a short retry in the broker, as a countdown.

What each caller keeps to itself: how it signs, what counts as delivered
(`[OK]` with HTTP 200 for an IPN, any 2xx for a shop), its lease, its
retries (a fixed interval for IPNs, a backoff and a give-up for shop
events) and its log. It lives in `merchant`, beside `merchant.queues`,
because both apps use it and `payments` must not import `sandbox`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import requests
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.db.models import F, Model, QuerySet
from django.utils import timezone

from merchant.queues import broker_may_hold

# Enough of an answer to judge it (an IPN's "[OK]") and show its start: a
# receiver that streams megabytes does not fill the worker's memory.
REPLY_READ_LIMIT = 4096
REPLY_EXCERPT = 200  # what an attempt row keeps of the answer
ERROR_LENGTH = 500  # what an attempt row keeps of the error
# A retry task may start this much before next_attempt_at (clocks between
# processes, ETA rounding) and still run instead of being dropped.
EARLY_TOLERANCE_SECONDS = 1.0
TOO_SLOW = "no complete answer within the task's time limit"

Row = TypeVar("Row", bound=Model)
Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class Reply:
    """What one POST got: the HTTP status (None without one), the answer's start, the error."""

    http_status: int | None = None
    body: bytes = b""
    error: str = ""
    duration_ms: int = 0

    @property
    def excerpt(self) -> str:
        """The start of the answer as text, as an attempt row keeps it."""
        return self.body.decode("utf-8", errors="replace")[:REPLY_EXCERPT]

    @property
    def summary(self) -> str:
        """One line for a row's last error: "HTTP 503", "HTTP 200 (ReadTimeout: ...)", the error."""
        if self.http_status is not None:
            text = f"HTTP {self.http_status}"
            return f"{text} ({self.error})" if self.error else text
        return self.error or "failed"


def attempt_fields(reply: Reply, *, ok: bool) -> dict[str, Any]:
    """The columns both attempt models share (http_status, error, reply, ok), from a reply."""
    return {
        "http_status": reply.http_status,
        "error": reply.error[:ERROR_LENGTH],
        "reply": reply.excerpt,
        "ok": ok,
    }


def attempt_time_limits(timeout: float) -> tuple[float, float]:
    """The (soft, hard) time limits of one attempt's task, in seconds, for a POST `timeout`.

    A POST waits at most the timeout to connect and the timeout for each read,
    but a receiver that trickles its answer a byte at a time never lets a read
    time out: the soft limit ends that attempt (recorded as failed, retried)
    and the hard one kills whatever still hangs.
    """
    soft = 2 * timeout + 15
    return soft, soft + 15


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\"()\[\]]+")


def describe(exc: requests.RequestException, timeout: float) -> str:
    """The error without its message's URL (which may carry a token in its query)."""
    text = str(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"ConnectTimeout: no connection within {timeout:g} s"
    if isinstance(exc, requests.ReadTimeout) or "Read timed out" in text:
        return f"ReadTimeout: no answer within {timeout:g} s"
    found = _ERRNO.search(text)
    if found:
        return f"{type(exc).__name__}: {found.group(0).strip()}"
    if "RemoteDisconnected" in text:
        return f"{type(exc).__name__}: the receiver closed the connection without answering"
    return type(exc).__name__


def post(url: str, *, body: bytes, headers: Mapping[str, str], timeout: float) -> Reply:
    """POST `body` once: no redirect followed, at most REPLY_READ_LIMIT bytes of the answer read.

    Never raises for the network or the task's soft time limit: those are a
    Reply with an error (and the status, when the status line came).
    """
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        response = requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        )
    except requests.RequestException as exc:
        return Reply(error=describe(exc, timeout), duration_ms=elapsed())
    except SoftTimeLimitExceeded:
        return Reply(error=TOO_SLOW, duration_ms=elapsed())
    with response:
        received = b""
        try:
            for chunk in response.iter_content(1024):
                received += chunk
                if len(received) >= REPLY_READ_LIMIT:
                    break
        except requests.RequestException as exc:  # the status line came; the rest did not
            return Reply(response.status_code, received, describe(exc, timeout), elapsed())
        except SoftTimeLimitExceeded:
            return Reply(response.status_code, received, TOO_SLOW, elapsed())
        return Reply(response.status_code, received, "", elapsed())


def attempt_once(
    *,
    due: QuerySet[Row],
    lease: timedelta,
    send: Callable[[Row], Reply],
    settle: Callable[[Row, Reply, datetime, datetime], Outcome],
    report: Callable[[Row, Reply, Outcome], object],
) -> Outcome | None:
    """Claim the one row of `due`, `send` it, `settle` it; None when there was nothing to claim.

    The claim is a conditional UPDATE (not delivered, due now) that counts the
    attempt and pushes next_attempt_at forward by `lease`, so a duplicate
    task finds nothing to do; the lease must outlast the attempt's task (its
    hard time limit), so an attempt killed there is claimed again only once it
    cannot be running any more. `settle(row, reply, started, finished)`
    records the attempt and schedules the next one, in one transaction; the
    row it gets is read just after the claim: its `attempts` counted and its
    `next_attempt_at` the lease's end, which `settle` may make its updates
    conditional on (the claim still holds: nobody else took the row over
    meanwhile). `report` (the log line, the metric) runs once that
    transaction has committed.
    """
    started = timezone.now()
    claimed = due.filter(
        delivered_at__isnull=True,
        next_attempt_at__lte=started + timedelta(seconds=EARLY_TOLERANCE_SECONDS),
    ).update(attempts=F("attempts") + 1, next_attempt_at=started + lease)
    if claimed != 1:
        return None
    row = due.get()
    reply = send(row)
    finished = timezone.now()
    with transaction.atomic():
        outcome = settle(row, reply, started, finished)
    report(row, reply, outcome)
    return outcome


def retry_if_soon(task: Any, retry_in: float | None) -> None:
    """Retry the attempt's `task` as a broker countdown when the next attempt is soon enough.

    A later one waits in the database (next_attempt_at) for the caller's
    redelivery sweep: the broker never holds a message for long
    (merchant.queues.broker_may_hold).
    """
    if retry_in is not None and broker_may_hold(retry_in):
        raise task.retry(countdown=max(retry_in, 0))
