"""The databases of `shops_scale` (bench/shops_scale.py), seeded and checked in a subprocess.

    python -m bench.shops_seed seed --shops 1000 --orders 6000
    python -m bench.shops_seed check

Run with the benchmark servers' environment (bench.servers.Infrastructure.env)
and DATABASE_URL naming the database: the benchmark's own process is set up
on another one. Prints one JSON object on stdout.

`seed` makes the shops (with 1, the default shop alone: the migrated
database; with N, N - 1 more, each with its own gateway key and sealed
secret, as `shop_create` stores them), then the orders awaiting payment of
the shop under test (the default one with 1 shop, `shop-0500` of the
1,000) and an API token of that shop. `check` counts what the phases left.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from typing import Any

TARGET_INDEX = 500  # of the N - 1 shops made besides the default one: not the first nor last
BATCH = 2000


def _shops(count: int) -> Any:
    """The shop under test, after making `count` - 1 shops besides the default one."""
    from payments.gateway.signing import new_secret
    from payments.models import Shop
    from payments.secret_box import seal
    from payments.shops import shop_default

    if count <= 1:
        return shop_default()
    Shop.objects.bulk_create(
        [
            Shop(
                name=f"shop-{i:04d}",
                gateway_key=uuid.uuid4(),
                gateway_secret_sealed=seal(new_secret()),
            )
            for i in range(1, count)
        ],
        batch_size=BATCH,
    )
    return Shop.objects.get(name=f"shop-{TARGET_INDEX:04d}")


def seed(shops: int, orders: int) -> dict[str, Any]:
    from bench.ipn_throughput import seed_orders
    from payments.models import Shop
    from payments.services.shops import api_token_create
    from payments.shops import shop_gateway_credentials

    shop = _shops(shops)
    credentials = shop_gateway_credentials(shop=shop)
    _, token = api_token_create(shop=shop, name="bench")
    return {
        "shops": Shop.objects.count(),
        "shop": shop.name,
        "shop_is_default": shop.is_default,
        "api_key": credentials.api_key,
        "api_secret": credentials.api_secret,
        "transactions": [str(t) for t, _ in seed_orders(orders, "seeded", shop=shop)],
        "token": token,
    }


def check() -> dict[str, Any]:
    from django.db.models import Count

    from payments.models import Notification, Order, Payment

    def rows(queryset: Any, *fields: str) -> dict[str, int]:
        found = queryset.values(*fields).annotate(n=Count("pk")).order_by()
        return {" ".join(str(row[f]) for f in fields): row["n"] for row in found}

    return {
        "notifications": rows(Notification.objects, "shop__name", "outcome"),
        "orders": rows(Order.objects, "shop__name", "status"),
        "payments": Payment.objects.count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("action", choices=("seed", "check"))
    parser.add_argument("--shops", type=int, default=1)
    parser.add_argument("--orders", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    result = seed(args.shops, args.orders) if args.action == "seed" else check()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
