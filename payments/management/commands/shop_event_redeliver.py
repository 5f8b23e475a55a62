"""`python manage.py shop_event_redeliver EVENT_ID [--endpoint ID]`: send an event again.

Without --endpoint: to each of its endpoints that has not taken it (failing
or given up). With --endpoint: to that endpoint of the event's shop, even if
it took it already. Each is due now with a new retry window; those of a
disabled endpoint wait until it is enabled.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.exceptions import EndpointRefused
from payments.management.events import describe_delivery, enqueued_note, event_numbered
from payments.management.webhooks import endpoint_numbered
from payments.services.shop_event_redelivery import shop_event_redeliver
from payments.shop_event_selectors import shop_event_deliveries


class Command(BaseCommand):
    help = "Send a shop event again, to its undelivered endpoints or to one endpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event", metavar="EVENT_ID")
        parser.add_argument("--endpoint", metavar="ID", help="Only to this webhook endpoint.")

    def handle(self, *args: Any, **options: Any) -> None:
        event = event_numbered(options["event"])
        endpoint = endpoint_numbered(options["endpoint"]) if options["endpoint"] else None
        try:
            done = shop_event_redeliver(event=event, endpoint=endpoint)
        except EndpointRefused as exc:
            raise CommandError(f"endpoint {options['endpoint']}: {exc}") from exc
        if not done.deliveries:
            self.stdout.write(f"event {event.pk}: every endpoint took it already; nothing sent")
            return
        for row in shop_event_deliveries(event=event).filter(pk__in=done.deliveries):
            self.stdout.write(describe_delivery(row))
        self.stdout.write(f"event {event.pk}: {enqueued_note(done)}")
