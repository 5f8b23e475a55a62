"""Shop events: every order change is recorded as an event and POSTed, signed, to the shop's
webhook endpoints (payments.models.WebhookEndpoint).

The transactional outbox: `shop_event_record` writes the event in the
caller's transaction (the event exists if and only if the change committed),
with a delivery (ShopEventDelivery) for each enabled endpoint of the order's
shop whose filter takes the event's type, and enqueues each delivery after
the commit. The event's id and body bytes are the same for every endpoint.
Enqueueing never fails the change: with the broker down a delivery simply
waits for the sweep, `shop_events_redeliver_due`, which beat runs every
minute.

The body is the payload version 2 (README, "Shop webhooks"): {"id", "type",
"version": 2, "timestamp", "data": {"order": <the order as the orders API
answers it>, ...the event's extras such as "flag"}}.

`shop_event_deliver` makes one attempt of one delivery with the delivery
engine (merchant.delivery: the claim, the bounded POST, the attempt
recorded): it POSTs the event's stored body to the endpoint with the
Standard Webhooks headers (webhook-id: the event's id; webhook-timestamp:
now; webhook-signature: by the endpoint's secret, and its former one while a
rotation runs; payments.shop_event_signing); any 2xx delivers it. A failure
schedules that delivery's next attempt with exponential backoff and jitter
until the retry window (SHOP_WEBHOOK_RETRY_HOURS) is over; then it is given
up and stays visible in the admin. Each endpoint's deliveries go on their
own: one that fails does not hold up another. `shop_event_ping` sends a
`ping` to one endpoint now and returns its answer.

Nothing here imports payments.services.orders (it imports this module), nor
payments.api.serializers at import time (it imports payments.services).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal
from uuid import UUID, uuid4

from django.db import transaction
from django.db.models import Count, Max, QuerySet
from django.utils import timezone
from rest_framework.fields import DateTimeField

from merchant import delivery
from merchant.chunks import locked_chunks
from payments.choices import SHOP_EVENT_PING
from payments.conf import payments_settings
from payments.exceptions import SecretUnreadable
from payments.metrics import SHOP_EVENT_DELIVERIES
from payments.models import (
    Order,
    ShopEvent,
    ShopEventAttempt,
    ShopEventDelivery,
    WebhookEndpoint,
)
from payments.services.webhook_endpoints import (
    webhook_endpoint_settings_in_step,
    webhook_endpoint_settings_in_step_since,
)
from payments.shop_event_signing import signature_headers
from payments.webhook_endpoints import webhook_endpoint_secrets, webhook_endpoints_taking

logger = logging.getLogger(__name__)

USER_AGENT = "merchant-payments-webhooks/0.1"
# Backoff: 30 s, 60 s, 120 s ... doubling up to one hour, each +-20%.
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0
BACKOFF_JITTER = 0.2
# The sweep takes deliveries overdue by this much: a retry already waiting in the
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
PAYLOAD_VERSION = 2
# The keys of the payload's "data" that an event's extras may not replace.
RESERVED_KEYS = frozenset({"order"})
# ISO 8601 in UTC whatever TIME_ZONE says ("...Z", as DRF writes UTC).
_UTC_DATETIME = DateTimeField(default_timezone=UTC)


def _timeout() -> float:
    return float(payments_settings.SHOP_WEBHOOK_TIMEOUT)


def _retry_window() -> timedelta:
    return timedelta(hours=float(payments_settings.SHOP_WEBHOOK_RETRY_HOURS))


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
    """The order as the shop sees it in an event: as the orders API answers it."""
    # Imported here: payments.api.serializers imports payments.services, which imports this.
    from payments.api.serializers import order_representation

    return order_representation(order)


def event_payload(
    *, event_id: UUID, event_type: str, now: datetime, data: Mapping[str, Any]
) -> dict[str, Any]:
    """The payload version 2: the envelope every event and ping share."""
    return {
        "id": str(event_id),
        "type": event_type,
        "version": PAYLOAD_VERSION,
        "timestamp": _UTC_DATETIME.to_representation(now),
        "data": dict(data),
    }


def _serialized(payload: dict[str, Any]) -> str:
    """Serialized once: every endpoint and every attempt gets exactly these bytes (ASCII)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True, default=str)


def _shop_id(order: Order) -> int:
    shop_id = order.shop_id
    assert shop_id is not None  # every order has a shop (the default one unless told)
    return shop_id


def _build_event(
    order: Order, event_type: str, extra: Mapping[str, Any] | None, now: datetime
) -> ShopEvent:
    event_id = uuid4()
    clash = RESERVED_KEYS.intersection(extra or {})
    if clash:
        raise ValueError(f"extra may not replace the event's {sorted(clash)[0]!r}")
    data = {"order": order_payload(order=order), **(extra or {})}
    payload = event_payload(event_id=event_id, event_type=event_type, now=now, data=data)
    body = _serialized(payload)
    return ShopEvent(
        id=event_id,
        shop_id=_shop_id(order),
        order=order,
        type=event_type,
        payload=json.loads(body),
        body=body,
        created=now,
    )


def _delivery(
    event: ShopEvent, endpoint: WebhookEndpoint, now: datetime, window: timedelta
) -> ShopEventDelivery:
    return ShopEventDelivery(
        event=event, endpoint=endpoint, created=now, next_attempt_at=now, gives_up_at=now + window
    )


def _record(events: list[ShopEvent], endpoints: Mapping[int, list[WebhookEndpoint]]) -> list[UUID]:
    """Write the events with a delivery per endpoint; enqueue the deliveries after the commit."""
    window = _retry_window()
    deliveries = [
        _delivery(event, endpoint, event.created, window)
        for event in events
        for endpoint in endpoints[event.shop_id]
    ]
    ShopEvent.objects.bulk_create(events, batch_size=500)
    ShopEventDelivery.objects.bulk_create(deliveries, batch_size=500)
    ids = [row.pk for row in deliveries]
    if ids:
        transaction.on_commit(partial(_enqueue_many, ids), robust=True)
    return ids


def shop_event_record(
    *, order: Order, event_type: str, extra: Mapping[str, Any] | None = None
) -> ShopEvent | None:
    """Record an event of `order` (in its current state) for its shop's endpoints.

    None when no enabled endpoint of the shop takes this type. Call it inside
    the transaction that changes the order: a rollback removes the event and
    its deliveries too. The deliveries are enqueued after the commit. `extra`
    adds keys to the payload's "data", next to its "order" (e.g. {"flag": {...}}).
    """
    synced = webhook_endpoint_settings_in_step()
    if not synced and _read_without_endpoints(order):
        return None
    event_type = str(event_type)
    endpoints = webhook_endpoints_taking(shop_ids=[_shop_id(order)], event_type=event_type)
    if not endpoints:
        return None
    event = _build_event(order, event_type, extra, timezone.now())
    _record([event], endpoints)
    return event


def _read_without_endpoints(order: Order) -> bool:
    """The order's shop, as this request read it just now, had no enabled webhook endpoint
    (`Shop.had_no_endpoints_lately`; the settings' endpoint is synced before this is trusted)."""
    shop = order.shop if Order.shop.is_cached(order) else None
    # Not a read made before this process's sync of the settings' endpoint took effect (by
    # another thread, say): that read may predate the endpoint the sync made.
    synced_at = webhook_endpoint_settings_in_step_since()
    return shop is not None and shop.had_no_endpoints_lately(not_before=synced_at)


def shop_events_record_many(*, order_ids: Iterable[UUID], event_type: str) -> list[UUID]:
    """`shop_event_record` for many orders at once (bulk transitions of the sweeps).

    Returns the ids of the events recorded (orders whose shop has no endpoint
    taking the type get none).
    """
    webhook_endpoint_settings_in_step()
    event_type = str(event_type)
    chosen = Order.objects.filter(pk__in=list(order_ids))
    shop_ids = set(chosen.order_by().values_list("shop_id", flat=True).distinct())
    endpoints = webhook_endpoints_taking(shop_ids=shop_ids, event_type=event_type)
    if not endpoints:
        return []  # no order is loaded for nothing (the sweeps, with no endpoint taking it)
    now = timezone.now()
    events = [
        _build_event(order, event_type, None, now)
        for order in chosen.filter(shop_id__in=list(endpoints))
        .prefetch_related("payments", "flags", "resolutions")  # the payload's lists, 3 queries
        .order_by("pk")
    ]
    _record(events, endpoints)
    return [event.pk for event in events]


def _enqueue_many(delivery_ids: list[UUID]) -> int:
    """Publish a task per delivery; stop at the first failure (the sweep catches up)."""
    from payments.tasks import deliver_shop_event

    sent = 0
    for delivery_id in delivery_ids:
        try:
            deliver_shop_event.apply_async(
                args=[str(delivery_id)], retry=True, retry_policy=_ENQUEUE_RETRY_POLICY
            )
        except Exception as exc:  # the broker is down: never fail the change that committed
            logger.warning(
                "shop event delivery %s not enqueued (%s); the sweep will deliver it",
                delivery_id,
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


def _signature(row: ShopEventDelivery) -> dict[str, str] | delivery.Reply:
    """The Standard Webhooks headers, signed now by the endpoint's secrets; or why it cannot be
    signed. The timestamp is this attempt's: a retry is not refused for its age."""
    endpoint = row.endpoint
    try:
        secrets = webhook_endpoint_secrets(endpoint=endpoint)
    except SecretUnreadable:
        return delivery.Reply(
            error="not sent: the endpoint's secret cannot be opened with DJANGO_SECRET_KEY "
            "or its fallbacks"
        )
    if not secrets:
        why = " (SHOP_WEBHOOK_SECRET is empty)" if endpoint.from_settings else ""
        return delivery.Reply(error=f"not sent: the endpoint has no secret{why}")
    event = row.event
    return signature_headers(
        event_id=str(event.pk), body=event.body, secrets=secrets, timestamp=int(time.time())
    )


def _send(row: ShopEventDelivery) -> delivery.Reply:
    """POST the event's stored body to the endpoint, signed now; never unsigned."""
    signed = _signature(row)
    if isinstance(signed, delivery.Reply):
        return signed
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **signed}
    body = row.event.body.encode("utf-8")  # the bytes signed: the body is ASCII (_serialized)
    return delivery.post(row.endpoint.url, body=body, headers=headers, timeout=_timeout())


def _delivered(reply: delivery.Reply) -> bool:
    """A shop takes an event with any 2xx answer, whatever its body."""
    return reply.http_status is not None and 200 <= reply.http_status < 300


def _settle(
    row: ShopEventDelivery, reply: delivery.Reply, started: datetime, finished: datetime
) -> DeliveryOutcome:
    """Record the attempt; deliver, give up, or schedule the next attempt with the backoff.

    A failure is settled only while the attempt's claim still holds (next_attempt_at is
    the lease its claim wrote) and against the window as it is now: a redelivery during
    the attempt renews the window (shop_event_deliveries_redeliver), so the attempt
    neither gives up at the old end nor overwrites what another writer set meanwhile.
    """
    ok = _delivered(reply)
    fields = delivery.attempt_fields(reply, ok=ok)
    ShopEventAttempt.objects.create(
        delivery=row, at=started, duration_ms=reply.duration_ms, **fields
    )
    pending = ShopEventDelivery.objects.filter(pk=row.pk, delivered_at__isnull=True)
    if ok:  # the shop took it: true whoever else holds the delivery now
        pending.update(delivered_at=finished, next_attempt_at=None, last_error="")
        return DeliveryOutcome("delivered")
    return _settle_failure(row, reply.summary[: delivery.ERROR_LENGTH], finished)


def _settle_failure(row: ShopEventDelivery, last_error: str, finished: datetime) -> DeliveryOutcome:
    """Give up once the window (as the database has it now) is over; else the next attempt."""
    mine = ShopEventDelivery.objects.filter(
        pk=row.pk, delivered_at__isnull=True, next_attempt_at=row.next_attempt_at
    )
    if mine.filter(gives_up_at__lte=finished).update(
        given_up_at=finished, next_attempt_at=None, last_error=last_error
    ):
        return DeliveryOutcome("given_up")
    window_end = mine.select_for_update().values_list("gives_up_at", flat=True).first()
    if window_end is None:  # not ours any more (delivered, or claimed again): its state stands
        return DeliveryOutcome("failed")
    next_at = min(finished + timedelta(seconds=backoff_seconds(attempt=row.attempts)), window_end)
    mine.update(next_attempt_at=next_at, last_error=last_error)
    return DeliveryOutcome("failed", retry_in=(next_at - finished).total_seconds())


def _enabled_endpoints() -> QuerySet[WebhookEndpoint, Any]:
    # A subquery, not a join: the claim's UPDATE and the sweep's FOR UPDATE touch
    # only the deliveries' rows, never lock an endpoint.
    return WebhookEndpoint.objects.filter(enabled=True).values("pk")


def _attempt(due: QuerySet[ShopEventDelivery]) -> DeliveryOutcome:
    outcome = delivery.attempt_once(
        due=due.select_related("event", "endpoint"),
        lease=_lease(),
        send=_send,
        settle=_settle,
        report=_report,
    )
    return outcome or DeliveryOutcome("skipped")


def shop_event_deliver(*, delivery_id: UUID | str) -> DeliveryOutcome:
    """POST one delivery once, unless it is delivered, given up, not due or its endpoint is
    disabled (then "skipped").

    The claim pushes next_attempt_at forward by a lease, so a duplicate task
    finds nothing to do. Every POST is recorded as a ShopEventAttempt. A
    2xx answer delivers it; anything else schedules the next attempt, or
    gives up once the window is over.
    """
    return _attempt(
        ShopEventDelivery.objects.filter(
            pk=delivery_id, given_up_at__isnull=True, endpoint__in=_enabled_endpoints()
        )
    )


def _report(row: ShopEventDelivery, reply: delivery.Reply, outcome: DeliveryOutcome) -> None:
    """The metric and the log line of one attempt (never the URL, the secret or the signature)."""
    SHOP_EVENT_DELIVERIES.labels(result=outcome.result).inc()
    event = row.event
    ok = outcome.result == "delivered"
    log = logger.info if ok else logger.warning
    log(
        "shop event %s (%s) to endpoint %s, attempt %s: %s",
        event.pk,
        event.type,
        row.endpoint_id,
        row.attempts,
        "delivered" if ok else f"{reply.summary}; {outcome.result}",
        extra={
            "event_id": str(event.pk),
            "event_type": event.type,
            "delivery_id": str(row.pk),
            "endpoint_id": row.endpoint_id,
            "shop_id": event.shop_id,
            "order_id": str(event.order_id) if event.order_id else None,
            "transaction": _payload_order(event.payload).get("transaction") or None,
            "attempt": row.attempts,
            "http_status": reply.http_status,
            "duration_ms": reply.duration_ms,
            "result": outcome.result,
        },
    )


def _payload_order(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The order in a stored payload: version 2's data.order, or the top-level order of an
    event recorded before it (still delivered with the body it was recorded with)."""
    data = payload.get("data") if payload.get("version") == PAYLOAD_VERSION else payload
    return (data or {}).get("order") or {}


# --- A test: a ping to one endpoint, now -----------------------------------------


def shop_event_ping(*, endpoint: WebhookEndpoint) -> ShopEventAttempt | None:
    """Send a `ping` event (no order) to `endpoint` now, enabled or not; its one attempt.

    Recorded like any event (its delivery shows among the endpoint's), but
    never retried: its window closes at once. The attempt holds the answer
    (status, the start of the body, the error, the time it took).
    """
    now = timezone.now()
    event_id = uuid4()
    payload = event_payload(event_id=event_id, event_type=SHOP_EVENT_PING, now=now, data={})
    body = _serialized(payload)
    with transaction.atomic():
        event = ShopEvent.objects.create(
            id=event_id,
            shop_id=endpoint.shop_id,
            type=SHOP_EVENT_PING,
            payload=json.loads(body),
            body=body,
            created=now,
        )
        row = _delivery(event, endpoint, now, timedelta(0))
        row.save(force_insert=True)
    _attempt(ShopEventDelivery.objects.filter(pk=row.pk))
    return ShopEventAttempt.objects.filter(delivery=row).last()


# --- The sweep and the admin's "send again" ------------------------------------


def shop_events_redeliver_due(
    *, limit: int = 500, grace_seconds: float = SWEEP_GRACE_SECONDS
) -> list[UUID]:
    """Enqueue deliveries not delivered, not given up, to an enabled endpoint, and overdue by
    `grace_seconds`; returns their ids.

    Covers the retries lost with a broker or a worker, the deliveries whose
    first enqueue failed (they are due from their creation) and those of an
    endpoint enabled again. Each chunk is locked
    (merchant.chunks.locked_chunks: concurrent sweeps split the work) and
    re-armed as due now: neither this sweep nor another picks it again
    before `grace_seconds`, and if this enqueue is lost too, a later sweep
    does. Duplicates are harmless: the attempt's claim lets one through.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=grace_seconds)
    due = ShopEventDelivery.objects.filter(
        delivered_at__isnull=True,
        given_up_at__isnull=True,
        next_attempt_at__lt=cutoff,
        endpoint__in=_enabled_endpoints(),
    ).only("pk", "next_attempt_at")
    picked: list[UUID] = []
    for chunk in locked_chunks(due, size=SWEEP_CHUNK, order=("next_attempt_at", "pk"), limit=limit):
        ids = [row.pk for row in chunk]
        ShopEventDelivery.objects.filter(pk__in=ids, delivered_at__isnull=True).update(
            next_attempt_at=now
        )
        transaction.on_commit(partial(_enqueue_many, ids), robust=True)
        picked.extend(ids)
    if picked:
        logger.info("shop events: %s overdue deliveries re-enqueued", len(picked))
    return picked


def _in_flight(ids: list[UUID], now: datetime) -> set[UUID]:
    """Those of `ids` with an attempt running: claimed (counted in `attempts`), not recorded
    yet, and its lease (next_attempt_at, as the claim wrote it) not run out.

    An attempt whose worker died unrecorded counts as running until its lease runs out,
    as the claim itself has it.
    """
    lease = _lease()
    rows = (
        ShopEventDelivery.objects.filter(pk__in=ids, next_attempt_at__gt=now)
        .annotate(logged=Count("attempt_log"), last_at=Max("attempt_log__at"))
        .values_list("pk", "attempts", "next_attempt_at", "logged", "last_at")
    )
    return {
        pk
        for pk, attempts, lease_end, logged, last_at in rows
        if lease_end is not None  # (next_attempt_at__gt: never None here)
        and attempts > logged
        and (last_at is None or lease_end - lease > last_at)
    }


def shop_event_deliveries_redeliver(*, deliveries: QuerySet[ShopEventDelivery]) -> int:
    """Give the undelivered ones of `deliveries` (also those given up) a new retry window,
    make them due now and enqueue those of enabled endpoints; returns how many go out now
    (enqueued, or with an attempt running).

    One with an attempt running is not made due again (that would send it twice at
    once): only its window is renewed, and that attempt's settle schedules the next try
    in it. The rows are locked first, so an attempt settles either before (and the
    delivery is due now) or after (in the new window). Those of a disabled endpoint
    wait, due, and go out once it is enabled (the sweep).
    """
    now = timezone.now()
    window = {"given_up_at": None, "gives_up_at": now + _retry_window()}
    ids = list(deliveries.filter(delivered_at__isnull=True).values_list("pk", flat=True))
    with transaction.atomic():
        rows = ShopEventDelivery.objects.filter(pk__in=ids, delivered_at__isnull=True)
        locked = list(rows.order_by("pk").select_for_update().values_list("pk", flat=True))
        running = _in_flight(locked, now)
        rows.filter(pk__in=running).update(**window)
        rows.exclude(pk__in=running).update(next_attempt_at=now, **window)
        sent = list(
            rows.exclude(pk__in=running)
            .filter(endpoint__in=_enabled_endpoints())
            .values_list("pk", flat=True)
        )
        if sent:
            transaction.on_commit(partial(_enqueue_many, sent), robust=True)
    return len(sent) + len(running)
