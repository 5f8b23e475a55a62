"""Reads of a shop's events and their deliveries, for the events API and the commands.

Every read takes the shop it is for and never finds another shop's rows: an
event (or an endpoint) of another shop is the same DoesNotExist as a missing
one. The writes (record, deliver, redeliver, replay) are in
payments.services.shop_events and payments.services.shop_event_redelivery.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Max, Q, QuerySet

from payments.choices import SHOP_EVENT_PING
from payments.models import Shop, ShopEvent, ShopEventDelivery, WebhookEndpoint

# Replay's bounds: the longest time range, and the most deliveries one replay makes due.
REPLAY_MAX_RANGE = timedelta(days=31)
REPLAY_MAX_DELIVERIES = 10_000


def shop_event_list(
    *,
    shop: Shop,
    type: str | None = None,
    order: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[ShopEvent]:
    """The shop's events, newest first; each filter given narrows them (after: inclusive,
    before: exclusive)."""
    events = ShopEvent.objects.filter(shop=shop).order_by("-created", "-id")
    if type:
        events = events.filter(type=type)
    if order is not None:
        events = events.filter(order_id=order)
    if created_after is not None:
        events = events.filter(created__gte=created_after)
    if created_before is not None:
        events = events.filter(created__lt=created_before)
    return events


def shop_event_deliveries(*, event: ShopEvent) -> QuerySet[ShopEventDelivery]:
    """The event's deliveries, one per endpoint (by endpoint id), with the endpoint and
    `last_attempt_at` (None before the first attempt)."""
    return (
        ShopEventDelivery.objects.filter(event=event)
        .select_related("endpoint")
        .annotate(last_attempt_at=Max("attempt_log__at"))
        .order_by("endpoint_id")
    )


def shop_event_get(*, shop: Shop, event_id: UUID) -> ShopEvent:
    """The shop's event; ShopEvent.DoesNotExist for another shop's, as for a missing one."""
    return ShopEvent.objects.get(pk=event_id, shop=shop)


def shop_endpoint_get(*, shop: Shop, endpoint_id: int) -> WebhookEndpoint:
    """The shop's webhook endpoint; DoesNotExist for another shop's, as for a missing one."""
    return WebhookEndpoint.objects.get(pk=endpoint_id, shop=shop)


def failed_deliveries_q() -> Q:
    """A delivery that failed: given up, or not delivered yet with a failed last attempt."""
    undelivered = Q(delivered_at__isnull=True)
    return undelivered & (Q(given_up_at__isnull=False) | ~Q(last_error=""))


def shop_deliveries_failed(
    *, shop: Shop, since: datetime, until: datetime, endpoint: WebhookEndpoint | None = None
) -> QuerySet[ShopEventDelivery]:
    """The shop's failed deliveries (`failed_deliveries_q`) of events created in
    [since, until), to `endpoint` only when given, oldest event first.

    Never a ping's: a ping is a test sent once (its window closes at once), not an event
    the shop missed.
    """
    found = ShopEventDelivery.objects.filter(
        failed_deliveries_q(),
        event__shop=shop,
        event__created__gte=since,
        event__created__lt=until,
    ).exclude(event__type=SHOP_EVENT_PING)
    if endpoint is not None:
        found = found.filter(endpoint=endpoint)
    return found.order_by("event__created", "pk")
