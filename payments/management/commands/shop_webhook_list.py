"""`python manage.py shop_webhook_list SHOP`: the shop's webhook endpoints, never their secrets.

One line each: id, on/off, URL, the event types it takes, and notes (from
SHOP_WEBHOOK_URL, a rotation running, the description).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payments.management.shops import shop_named
from payments.management.webhooks import describe


class Command(BaseCommand):
    help = "List a shop's webhook endpoints (never their secrets)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("shop", metavar="SHOP", help="The shop's name.")

    def handle(self, *args: Any, **options: Any) -> None:
        shop = shop_named(options["shop"])
        endpoints = list(shop.webhook_endpoints.order_by("pk"))
        if not endpoints:
            self.stdout.write(f"shop {shop.name!r} has no webhook endpoint")
        for endpoint in endpoints:
            self.stdout.write(describe(endpoint))
