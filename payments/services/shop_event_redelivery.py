"""Sending a shop's events again on its request: one event (to its endpoints, or to one), or
every failed delivery of a time range (a replay).

Both make the chosen deliveries due now with a new retry window and enqueue
those of enabled endpoints (`shop_event_deliveries_redeliver`, as the admin's
"send again"; one whose attempt is running only gets the new window); a
disabled endpoint's deliveries wait, due, until it is enabled. The body and
the event id are the stored ones: the shop drops a duplicate by its id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from payments.choices import SHOP_EVENT_PING
from payments.exceptions import EndpointRefused
from payments.models import ShopEvent, ShopEventDelivery, WebhookEndpoint
from payments.services.shop_events import shop_event_deliveries_redeliver

REPLAY_CHUNK = 500


@dataclass(frozen=True)
class Redelivered:
    """What a redelivery made due (`deliveries`, their ids) and how many it enqueued now."""

    deliveries: list[UUID]
    enqueued: int


def _reopened(event: ShopEvent, endpoint: WebhookEndpoint) -> QuerySet[ShopEventDelivery]:
    """The event's delivery to `endpoint`, made if it has none, undelivered if it was delivered.

    The attempt log keeps the earlier attempts; `attempts` goes on counting.
    """
    if event.shop_id != endpoint.shop_id:
        raise EndpointRefused("the endpoint is not one of the event's shop")
    if event.type != SHOP_EVENT_PING and not endpoint.takes(event.type):
        raise EndpointRefused(f"the endpoint does not take {event.type} events (its filter)")
    now = timezone.now()
    row, created = ShopEventDelivery.objects.get_or_create(
        event=event, endpoint=endpoint, defaults={"created": now, "gives_up_at": now}
    )
    if not created:
        ShopEventDelivery.objects.filter(pk=row.pk, delivered_at__isnull=False).update(
            delivered_at=None, last_error=""
        )
    return ShopEventDelivery.objects.filter(pk=row.pk)


def shop_event_redeliver(
    *, event: ShopEvent, endpoint: WebhookEndpoint | None = None
) -> Redelivered:
    """Send `event` again: to each of its deliveries not delivered yet, or, given `endpoint`
    (one of the event's shop's), to that endpoint even if delivered already.

    To an endpoint without a delivery of it (made after the event) a delivery
    is made, if its filter takes the event's type; EndpointRefused otherwise.
    """
    with transaction.atomic():
        if endpoint is None:
            chosen = event.deliveries.filter(delivered_at__isnull=True)
        else:
            chosen = _reopened(event, endpoint)
        ids = list(chosen.values_list("pk", flat=True))
        enqueued = shop_event_deliveries_redeliver(deliveries=chosen)
    return Redelivered(deliveries=ids, enqueued=enqueued)


def shop_event_deliveries_replay(
    *, delivery_ids: Sequence[UUID], progress: Callable[[int], object] | None = None
) -> Redelivered:
    """Send these deliveries again (a replay of failed ones), REPLAY_CHUNK at a time, each
    chunk enqueued as it is made due; `progress(n)` after each chunk of n.

    Those delivered meanwhile are left alone. The caller bounds how many.
    """
    enqueued = 0
    for start in range(0, len(delivery_ids), REPLAY_CHUNK):
        chunk = list(delivery_ids[start : start + REPLAY_CHUNK])
        with transaction.atomic():
            enqueued += shop_event_deliveries_redeliver(
                deliveries=ShopEventDelivery.objects.filter(pk__in=chunk)
            )
        if progress is not None:
            progress(len(chunk))
    return Redelivered(deliveries=list(delivery_ids), enqueued=enqueued)
