"""`python manage.py shop_list`: every shop, its gateway key id, tokens and orders.

Never a secret: the gateway secret shows only where it is kept (`sealed`, or
the environment variable that holds it), and tokens only by count.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from payments.shops import shops_overview

COLUMNS = ("name", "id", "active", "gateway key id", "secret", "tokens", "orders")


class Command(BaseCommand):
    help = "List the shops: name, id, active, gateway key id, live API tokens, orders."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [
            (
                line.shop.name + (" (default)" if line.shop.is_default else ""),
                str(line.shop.pk),
                "yes" if line.shop.active else "no",
                line.gateway_key or "-",
                line.secret_source,
                str(line.live_tokens),
                str(line.orders),
            )
            for line in shops_overview()
        ]
        widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
        for row in [COLUMNS, *rows]:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())
