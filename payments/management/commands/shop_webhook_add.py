"""`python manage.py shop_webhook_add SHOP URL [--events a,b] [--description TEXT]`.

Adds a webhook endpoint to the shop and prints its id and its secret: the
secret is shown this once (it is kept sealed), so put it in the shop's
configuration now. `--events` is the filter (default: every event type).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.choices import SHOP_EVENT_TYPES
from payments.management.shops import shop_named
from payments.services.webhook_endpoints import webhook_endpoint_create


class Command(BaseCommand):
    help = "Add a webhook endpoint to a shop; prints its secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("shop", metavar="SHOP", help="The shop's name.")
        parser.add_argument("url", metavar="URL", help="Where its events are POSTed (http(s)).")
        parser.add_argument(
            "--events",
            default="",
            help="Comma-separated event types it takes (default: all): "
            + ",".join(SHOP_EVENT_TYPES),
        )
        parser.add_argument("--description", default="", help="A note for the admin.")
        parser.add_argument("--disabled", action="store_true", help="Add it switched off.")

    def handle(self, *args: Any, **options: Any) -> None:
        shop = shop_named(options["shop"])
        try:
            endpoint, secret = webhook_endpoint_create(
                shop=shop,
                url=options["url"],
                event_types=options["events"].split(","),
                description=options["description"],
                enabled=not options["disabled"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"endpoint {endpoint.pk} of shop {shop.name!r}: {endpoint.url}")
        self.stdout.write(f"secret (shown this once): {secret}")
