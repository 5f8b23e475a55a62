"""What the shop event commands share: reading a time, an event or order id and a shop's
endpoint, describing an event and its deliveries in one line each, and what a redelivery
enqueued.

The shop they are given is found as by every shop command (payments.management.shops),
an endpoint as by the shop_webhook_* ones (payments.management.webhooks).
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime

from django.core.management.base import CommandError
from django.utils.dateparse import parse_date, parse_datetime

from payments.management.webhooks import endpoint_numbered
from payments.models import Shop, ShopEvent, ShopEventDelivery, WebhookEndpoint
from payments.services.shop_event_redelivery import Redelivered
from payments.shop_event_selectors import REPLAY_MAX_RANGE, shop_endpoint_get

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def moment(text: str) -> datetime:
    """--since/--until: an ISO 8601 date or time; without a time zone, UTC."""
    try:
        found = parse_datetime(text)
        if found is None and (day := parse_date(text)) is not None:
            found = datetime(day.year, day.month, day.day)
    except ValueError:
        found = None
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (such as 2026-11-30 or 2026-11-30T12:00:00Z)"
        )
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def count(text: str) -> int:
    """--limit: a whole number, at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def time_range(since: datetime, until: datetime, *, bounded: bool = False) -> None:
    """A CommandError unless since comes before until (and, `bounded`, within the replay's
    longest range)."""
    if since >= until:
        raise CommandError("--until must be later than --since")
    if bounded and until - since > REPLAY_MAX_RANGE:
        raise CommandError(
            f"at most {REPLAY_MAX_RANGE.days} days from --since to --until: replay a "
            "shorter range at a time"
        )


def _uuid(text: str, *, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} (a UUID)") from exc


def order_id(text: str) -> uuid.UUID:
    """--order: an order id (a UUID)."""
    return _uuid(text, what="an order id")


def event_numbered(text: str) -> ShopEvent:
    """The event with this id (of any shop: the commands are the operator's), or a
    CommandError that says there is none."""
    try:
        event_id = _uuid(text, what="an event id")
    except argparse.ArgumentTypeError as exc:
        raise CommandError(str(exc)) from exc
    event = ShopEvent.objects.select_related("shop").filter(pk=event_id).first()
    if event is None:
        raise CommandError(f"no event {text} (`manage.py shop_events --shop NAME` lists them)")
    return event


def shop_endpoint_numbered(given: str | None, *, shop: Shop) -> WebhookEndpoint | None:
    """--endpoint of a shop's command: None when not given; a CommandError for an unknown
    id or another shop's endpoint."""
    if given is None:
        return None
    endpoint = endpoint_numbered(given)
    try:
        return shop_endpoint_get(shop=shop, endpoint_id=endpoint.pk)
    except WebhookEndpoint.DoesNotExist as exc:
        raise CommandError(f"webhook endpoint {given} is not one of this shop's") from exc


def enqueued_note(done: Redelivered) -> str:
    """ "N enqueued", and how many wait for their disabled endpoint, if any."""
    waiting = len(done.deliveries) - done.enqueued
    note = f" ({waiting} wait for their disabled endpoint)" if waiting else ""
    return f"{done.enqueued} enqueued{note}"


def describe_event(event: ShopEvent, deliveries: list[ShopEventDelivery]) -> str:
    """One line: created, id, type, order, how many of its deliveries are delivered."""
    delivered = sum(1 for row in deliveries if row.delivered_at is not None)
    order = str(event.order_id) if event.order_id else "-"
    return (
        f"{event.created:{TIME_FORMAT}}  {event.pk}  {event.type:<22}  order {order}  "
        f"delivered {delivered}/{len(deliveries)}"
    )


def describe_delivery(row: ShopEventDelivery) -> str:
    """One line: the endpoint, the state, the attempts, when it was done (delivered or given
    up) or is tried next, the URL, and the last error."""
    when, word = {
        "delivered": (row.delivered_at, "at"),
        "given_up": (row.given_up_at, "at"),
    }.get(row.state, (row.next_attempt_at, "next"))
    stamp = f"{word} {when:{TIME_FORMAT}}" if when is not None else "-"
    error = f"  last error: {row.last_error}" if row.last_error else ""
    return (
        f"endpoint {row.endpoint_id:>5}  {row.state:<9}  {row.attempts} attempt(s)  "
        f"{stamp}  {row.endpoint.url}{error}"
    )
