"""Shop events: every order change is recorded as an event and POSTed to the shop, signed.

The transactional outbox: `shop_event_record` writes the event in the
caller's transaction (the event exists if and only if the change committed)
and enqueues its delivery after the commit. Enqueueing never fails the
change: with the broker down the event simply waits for the sweep,
`shop_events_redeliver_due`, which beat runs every minute.

`shop_event_deliver` makes one attempt with the delivery engine
(merchant.delivery: the claim, the bounded POST, the attempt recorded): it
POSTs the stored body signed with a fresh timestamp
(payments.shop_event_signing); any 2xx delivers the event. A failure
schedules the next attempt with exponential backoff and jitter until the
retry window (SHOP_WEBHOOK_RETRY_HOURS) is over; then the event is given
up and stays visible in the admin.

Nothing here imports payments.services.orders (it imports this module).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal
from uuid import UUID, uuid4

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from merchant import delivery
from merchant.chunks import locked_chunks
from payments.metrics import SHOP_EVENT_DELIVERIES
from payments.models import Order, ShopEvent, ShopEventAttempt
from payments.order_json import order_summary
from payments.shop_event_signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign_shop_event,
)

logger = logging.getLogger(__name__)

USER_AGENT = "merchant-payments-webhooks/0.1"
# Backoff: 30 s, 60 s, 120 s ... doubling up to one hour, each +-20%.
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0
BACKOFF_JITTER = 0.2
# The sweep takes events overdue by this much: a retry already waiting in the
# broker for its time is not enqueued a second time.
SWEEP_GRACE_SECONDS = 60.0
SWEEP_CHUNK = 100
# Publishing to a broker that is down must not hold up the request that made
# the change (e.g. the IPN answer): two quick tries, then the sweep's turn.
_ENQUEUE_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0.1,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
RESERVED_KEYS = frozenset({"id", "type", "created", "order"})


def _timeout() -> float:
    return float(settings.SHOP_WEBHOOK_TIMEOUT)


def _retry_window() -> timedelta:
    return timedelta(hours=float(settings.SHOP_WEBHOOK_RETRY_HOURS))


def attempt_time_limits() -> tuple[float, float]:
    """The (soft, hard) time limits of one attempt's task (merchant.delivery), in seconds.

    An attempt stopped at the soft limit is recorded as failed and retried
    with the backoff.
    """
    return delivery.attempt_time_limits(_timeout())


def _lease() -> timedelta:
    """How long an attempt in progress keeps others off: past its task's hard time limit.

    An attempt killed at its limit is claimed again only once it cannot be
    running any more (by the sweep, which waits for the lease to run out).
    """
    return timedelta(seconds=attempt_time_limits()[1] + 30)


def backoff_seconds(*, attempt: int, rng: random.Random | None = None) -> float:
    """Delay after the `attempt`-th failed attempt (1-based): 30 s * 2^(n-1), max 1 h, +-20%."""
    exponent = min(max(attempt, 1) - 1, 20)
    base = min(BACKOFF_BASE_SECONDS * 2**exponent, BACKOFF_CAP_SECONDS)
    # Jitter only spreads retries apart; it needs no cryptographic randomness.
    factor = (rng or random).uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)
    return base * factor


# --- Recording (inside the caller's transaction) -------------------------------


def order_payload(*, order: Order) -> dict[str, Any]:
    """The order as the shop sees it in an event: the API's summary, its transaction and data."""
    return {
        **order_summary(order),
        "transaction": str(order.transaction) if order.transaction else None,
        "data": order.data,
    }


def _build_event(
    order: Order, event_type: str, extra: Mapping[str, Any] | None, now: datetime
) -> ShopEvent:
    event_id = uuid4()
    payload: dict[str, Any] = {
        "id": str(event_id),
        "type": event_type,
        "created": now.isoformat(),
        "order": order_payload(order=order),
    }
    for key, value in (extra or {}).items():
        if key in RESERVED_KEYS:
            raise ValueError(f"extra may not replace the event's {key!r}")
        payload[key] = value
    # Serialized once: every attempt sends exactly these bytes (ASCII, compact).
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True, default=str)
    return ShopEvent(
        id=event_id,
        order=order,
        type=event_type,
        payload=json.loads(body),
        body=body,
        created=now,
        next_attempt_at=now,
        gives_up_at=now + _retry_window(),
    )


def shop_event_record(
    *, order: Order, event_type: str, extra: Mapping[str, Any] | None = None
) -> ShopEvent | None:
    """Record an event of `order` (in its current state) for the shop; None when not configured.

    Call it inside the transaction that changes the order: a rollback
    removes the event too. Its delivery is enqueued after the commit.
    `extra` adds top-level keys to the payload (e.g. {"flag": {...}}).
    """
    if not settings.SHOP_WEBHOOK_URL:
        return None
    event = _build_event(order, str(event_type), extra, timezone.now())
    event.save(force_insert=True)
    transaction.on_commit(partial(_enqueue_many, [event.pk]), robust=True)
    return event


def shop_events_record_many(*, order_ids: Iterable[UUID], event_type: str) -> list[UUID]:
    """`shop_event_record` for many orders at once (bulk transitions of the sweeps)."""
    if not settings.SHOP_WEBHOOK_URL:
        return []
    now = timezone.now()
    events = [
        _build_event(order, str(event_type), None, now)
        for order in Order.objects.filter(pk__in=list(order_ids)).order_by("pk")
    ]
    ShopEvent.objects.bulk_create(events, batch_size=500)
    ids = [event.pk for event in events]
    if ids:
        transaction.on_commit(partial(_enqueue_many, ids), robust=True)
    return ids


def _enqueue_many(event_ids: list[UUID]) -> int:
    """Publish a delivery task per event; stop at the first failure (the sweep catches up)."""
    from payments.tasks import deliver_shop_event

    sent = 0
    for event_id in event_ids:
        try:
            deliver_shop_event.apply_async(
                args=[str(event_id)], retry=True, retry_policy=_ENQUEUE_RETRY_POLICY
            )
        except Exception as exc:  # the broker is down: never fail the change that committed
            logger.warning(
                "shop event %s not enqueued (%s); the sweep will deliver it",
                event_id,
                type(exc).__name__,
            )
            break
        sent += 1
    return sent


# --- Delivery (one attempt; from the task) -------------------------------------


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one call of shop_event_deliver did; `retry_in` seconds when it must be tried again."""

    result: Literal["delivered", "failed", "given_up", "skipped"]
    retry_in: float | None = None


def _send(event: ShopEvent) -> delivery.Reply:
    """POST the event's stored body, signed now; not sent without a URL and a secret."""
    url, secret = settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET
    if not url:
        return delivery.Reply(error="not sent: SHOP_WEBHOOK_URL is not set")
    if not secret:
        return delivery.Reply(error="not sent: SHOP_WEBHOOK_SECRET is not set")
    body = event.body.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: str(event.pk),
        EVENT_TYPE_HEADER: event.type,
        SIGNATURE_HEADER: sign_shop_event(body, secret),
    }
    return delivery.post(url, body=body, headers=headers, timeout=_timeout())


def _delivered(reply: delivery.Reply) -> bool:
    """A shop takes an event with any 2xx answer, whatever its body."""
    return reply.http_status is not None and 200 <= reply.http_status < 300


def _settle(
    event: ShopEvent, reply: delivery.Reply, started: datetime, finished: datetime
) -> DeliveryOutcome:
    """Record the attempt; deliver the event, give it up, or schedule it with the backoff."""
    ok = _delivered(reply)
    fields = delivery.attempt_fields(reply, ok=ok)
    ShopEventAttempt.objects.create(
        event=event, at=started, duration_ms=reply.duration_ms, **fields
    )
    pending = ShopEvent.objects.filter(pk=event.pk, delivered_at__isnull=True)
    if ok:
        pending.update(delivered_at=finished, next_attempt_at=None, last_error="")
        return DeliveryOutcome("delivered")
    last_error = reply.summary[: delivery.ERROR_LENGTH]
    if finished >= event.gives_up_at:
        pending.update(given_up_at=finished, next_attempt_at=None, last_error=last_error)
        return DeliveryOutcome("given_up")
    next_at = min(
        finished + timedelta(seconds=backoff_seconds(attempt=event.attempts)), event.gives_up_at
    )
    pending.update(next_attempt_at=next_at, last_error=last_error)
    return DeliveryOutcome("failed", retry_in=(next_at - finished).total_seconds())


def shop_event_deliver(*, event_id: UUID | str) -> DeliveryOutcome:
    """POST one event once, unless it is delivered, given up or not due (then "skipped").

    The claim pushes next_attempt_at forward by a lease, so a duplicate task
    finds nothing to do. Every POST is recorded as a ShopEventAttempt. A
    2xx answer delivers the event; anything else schedules the next attempt,
    or gives up once the window is over.
    """
    outcome = delivery.attempt_once(
        due=ShopEvent.objects.filter(pk=event_id, given_up_at__isnull=True),
        lease=_lease(),
        send=_send,
        settle=_settle,
        report=_report,
    )
    return outcome or DeliveryOutcome("skipped")


def _report(event: ShopEvent, reply: delivery.Reply, outcome: DeliveryOutcome) -> None:
    """The metric and the log line of one attempt (never the URL, the secret or the signature)."""
    SHOP_EVENT_DELIVERIES.labels(result=outcome.result).inc()
    ok = outcome.result == "delivered"
    log = logger.info if ok else logger.warning
    log(
        "shop event %s (%s) attempt %s: %s",
        event.pk,
        event.type,
        event.attempts,
        "delivered" if ok else f"{reply.summary}; {outcome.result}",
        extra={
            "event_id": str(event.pk),
            "event_type": event.type,
            "order_id": str(event.order_id) if event.order_id else None,
            "transaction": event.payload.get("order", {}).get("transaction") or None,
            "attempt": event.attempts,
            "http_status": reply.http_status,
            "duration_ms": reply.duration_ms,
            "result": outcome.result,
        },
    )


# --- The sweep and the admin's "send again" ------------------------------------


def shop_events_redeliver_due(
    *, limit: int = 500, grace_seconds: float = SWEEP_GRACE_SECONDS
) -> list[UUID]:
    """Enqueue events not delivered, not given up, and overdue by `grace_seconds`.

    Covers the retries lost with a broker or a worker and the events whose
    first enqueue failed (they are due from their creation). Each chunk is
    locked (merchant.chunks.locked_chunks: concurrent sweeps split the work)
    and re-armed as due now: neither this sweep nor another
    picks it again before `grace_seconds`, and if this enqueue is lost too,
    a later sweep does. Duplicates are harmless: the attempt's claim lets
    one through.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=grace_seconds)
    due = ShopEvent.objects.filter(
        delivered_at__isnull=True, given_up_at__isnull=True, next_attempt_at__lt=cutoff
    ).only("pk", "next_attempt_at")
    picked: list[UUID] = []
    for chunk in locked_chunks(due, size=SWEEP_CHUNK, order=("next_attempt_at", "pk"), limit=limit):
        ids = [event.pk for event in chunk]
        ShopEvent.objects.filter(pk__in=ids, delivered_at__isnull=True).update(next_attempt_at=now)
        transaction.on_commit(partial(_enqueue_many, ids), robust=True)
        picked.extend(ids)
    if picked:
        logger.info("shop events: %s overdue re-enqueued", len(picked))
    return picked


def shop_event_redeliver(*, event_id: UUID | str) -> bool:
    """Make an undelivered event (also one given up) due now with a new retry window; enqueue it."""
    now = timezone.now()
    updated = ShopEvent.objects.filter(pk=event_id, delivered_at__isnull=True).update(
        next_attempt_at=now, given_up_at=None, gives_up_at=now + _retry_window()
    )
    if updated:
        transaction.on_commit(partial(_enqueue_many, [UUID(str(event_id))]), robust=True)
    return bool(updated)
