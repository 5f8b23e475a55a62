"""`python manage.py shop_disable NAME`: no more API access or new orders for the shop.

Its tokens are refused (401 `shop_disabled`) and it creates no order; its
notifications are still taken, so money already on its way is recorded.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payments.management.shops import shop_named
from payments.services.shops import shop_disable


class Command(BaseCommand):
    help = "Disable a shop: its API tokens are refused and it takes no new orders."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("shop", help="The shop's name.")

    def handle(self, *args: Any, **options: Any) -> None:
        shop = shop_named(options["shop"])
        if not shop.active:
            self.stdout.write(f"Shop {shop.name} is disabled already.")
            return
        shop_disable(shop=shop)
        self.stdout.write(
            self.style.SUCCESS(
                f"Shop {shop.name} disabled: its API tokens are refused and it takes no new "
                "orders; its notifications are still taken."
            )
        )
