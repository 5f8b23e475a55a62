"""The shops, endpoints and events the events API and command tests start from.

Shop A has two endpoints, each a real HTTP server in a thread
(tests.http_receiver): `good` answers 204, `bad` answers 500 until a test
changes its script. Shop B has one endpoint of its own. Events come from real
order transitions; each attempt is made by the delivery service, as a worker
would (`deliver_due`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from payments.models import Order, Shop, ShopEvent, ShopEventDelivery, WebhookEndpoint
from payments.services import order_transition
from payments.services import shop_events as service
from payments.services.webhook_endpoints import webhook_endpoint_create
from payments.states import OrderStatus
from tests.factories import accepted_order, api_token_key, shop_with_account
from tests.http_receiver import ScriptedReceiver, scripted

OK = (204, b"")
FAIL = (500, b"no")


@dataclass
class World:
    shop_a: Shop
    shop_b: Shop
    good: WebhookEndpoint
    bad: WebhookEndpoint
    other: WebhookEndpoint
    good_server: ScriptedReceiver
    bad_server: ScriptedReceiver
    other_server: ScriptedReceiver
    key_a: str
    key_b: str
    events_a: list[ShopEvent] = field(default_factory=list)  # oldest first
    event_b: ShopEvent | None = None

    def servers(self) -> list[ScriptedReceiver]:
        return [self.good_server, self.bad_server, self.other_server]


def receiver(*replies: tuple[int, bytes]) -> ScriptedReceiver:
    return ScriptedReceiver(scripted(replies), path="/hooks").start()


def event_of(order: Order, to: str) -> ShopEvent:
    order_transition(order_id=order.pk, to=to, reason="test")
    return ShopEvent.objects.filter(order=order).order_by("-created").first()  # type: ignore[return-value]


def deliver_due() -> list[str]:
    """One attempt of every delivery due now (what the workers would do)."""
    due = ShopEventDelivery.objects.filter(
        delivered_at__isnull=True, given_up_at__isnull=True, next_attempt_at__lte=timezone.now()
    )
    return [
        service.shop_event_deliver(delivery_id=pk).result
        for pk in due.order_by("created").values_list("pk", flat=True)
    ]


def created_at(event: ShopEvent, moment: datetime) -> None:
    ShopEvent.objects.filter(pk=event.pk).update(created=moment)
    event.refresh_from_db()


def build_world() -> World:
    """Shop A: three events a day apart (paid, cancelled, paid), each tried once at both
    endpoints (delivered at `good`, failing at `bad`); shop B: one event, delivered."""
    shop_a, shop_b = shop_with_account("shop-a"), shop_with_account("shop-b")
    good_server, bad_server, other_server = receiver(OK), receiver(FAIL), receiver(OK)
    world = World(
        shop_a=shop_a,
        shop_b=shop_b,
        good=webhook_endpoint_create(shop=shop_a, url=good_server.url)[0],
        bad=webhook_endpoint_create(shop=shop_a, url=bad_server.url)[0],
        other=webhook_endpoint_create(shop=shop_b, url=other_server.url)[0],
        good_server=good_server,
        bad_server=bad_server,
        other_server=other_server,
        key_a=api_token_key(shop=shop_a),
        key_b=api_token_key(shop=shop_b),
    )
    now = timezone.now()
    for days_ago, to in ((3, OrderStatus.PAID), (2, OrderStatus.CANCELLED), (1, OrderStatus.PAID)):
        event = event_of(accepted_order(shop=shop_a), to)
        created_at(event, now - timedelta(days=days_ago))
        world.events_a.append(event)
    world.event_b = event_of(accepted_order(shop=shop_b), OrderStatus.PAID)
    deliver_due()
    return world
