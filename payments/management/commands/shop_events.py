"""`python manage.py shop_events --shop NAME [--type T] [--order ID] [--since] [--until]
[--limit N]`: a shop's events, newest first, one line each.

Each line: when, the event id, its type, its order, and how many of its
deliveries are delivered. `shop_event_show EVENT_ID` shows one with its
deliveries.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payments.api.event_serializers import EVENT_TYPES
from payments.management.events import count, describe_event, moment, order_id, time_range
from payments.management.shops import shop_named
from payments.shop_event_selectors import shop_event_list


class Command(BaseCommand):
    help = "List a shop's events, newest first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shop", required=True, help="The shop's name.")
        parser.add_argument("--type", choices=EVENT_TYPES, help="Only events of this type.")
        parser.add_argument("--order", type=order_id, help="Only the events of this order.")
        parser.add_argument("--since", type=moment, help="Created at or after (ISO 8601, UTC).")
        parser.add_argument("--until", type=moment, help="Created before (ISO 8601, UTC).")
        parser.add_argument(
            "--limit", type=count, default=50, help="At most this many (default 50)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        shop = shop_named(options["shop"])
        since, until = options["since"], options["until"]
        if since is not None and until is not None:
            time_range(since, until)
        events = shop_event_list(
            shop=shop,
            type=options["type"],
            order=options["order"],
            created_after=since,
            created_before=until,
        ).prefetch_related("deliveries")
        shown = list(events[: options["limit"]])
        if not shown:
            self.stdout.write(f"shop {shop.name!r}: no event")
        for event in shown:
            self.stdout.write(describe_event(event, list(event.deliveries.all())))
