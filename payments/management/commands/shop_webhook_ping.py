"""`python manage.py shop_webhook_ping ENDPOINT_ID`: send a `ping` event now, print the answer.

The ping is signed like any event and recorded among the endpoint's
deliveries; it is never retried. Exits with an error unless the endpoint
answered 2xx.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.management.webhooks import endpoint_numbered
from payments.services.shop_events import shop_event_ping


class Command(BaseCommand):
    help = "Send a ping event to a webhook endpoint now and print its answer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("endpoint", metavar="ENDPOINT_ID")

    def handle(self, *args: Any, **options: Any) -> None:
        endpoint = endpoint_numbered(options["endpoint"])
        attempt = shop_event_ping(endpoint=endpoint)
        if attempt is None:
            raise CommandError(f"endpoint {endpoint.pk}: the ping was not sent")
        status = f"HTTP {attempt.http_status}" if attempt.http_status else "no answer"
        self.stdout.write(f"endpoint {endpoint.pk}: {endpoint.url}")
        self.stdout.write(f"{status} in {attempt.duration_ms} ms")
        if attempt.reply:
            self.stdout.write(f"answer: {attempt.reply}")
        if not attempt.ok:
            raise CommandError(attempt.error or f"the endpoint answered {status}")
