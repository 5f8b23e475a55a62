"""`python manage.py shop_event_show EVENT_ID`: an event, its body as delivered (its keys in
their order), and its delivery to each endpoint (state, attempts, when next or when done,
the last error)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payments.management.events import TIME_FORMAT, describe_delivery, event_numbered
from payments.shop_event_selectors import shop_event_deliveries


class Command(BaseCommand):
    help = "Show a shop event and its deliveries."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event", metavar="EVENT_ID")

    def handle(self, *args: Any, **options: Any) -> None:
        event = event_numbered(options["event"])
        self.stdout.write(f"event {event.pk}  {event.type}  of shop {event.shop.name!r}")
        self.stdout.write(f"created {event.created:{TIME_FORMAT}} UTC")
        self.stdout.write(f"order {event.order_id or '-'}")
        # The body as stored and delivered: its keys in their order, indented to read.
        self.stdout.write(json.dumps(json.loads(event.body), indent=2))
        deliveries = list(shop_event_deliveries(event=event))
        if not deliveries:
            self.stdout.write("no delivery (no endpoint took it)")
        for row in deliveries:
            self.stdout.write(describe_delivery(row))
