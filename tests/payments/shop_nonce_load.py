"""One process of the two-shop nonce test (tests/payments/test_shop_nonce_processes.py).

    python -m tests.payments.shop_nonce_load --process 0 --shops 3,4 --threads 8 --orders 3

Run from the project folder with DJANGO_SETTINGS_MODULE=tests.settings, the
test database, the test process's DJANGO_SECRET_KEY (the shops' secrets are
sealed with it) and the gateway settings in the environment. Thread i works
for shop i mod len(shops) and creates --orders orders one after the other
with `payments.services.orders.order_create(shop=...)`: the real per-shop
path (the shop's client, its key's nonce sequence and call lock). The
threads wait at a barrier; the process prints `READY` once every thread
waits, and a line on stdin releases them. The last line printed is
`SUMMARY <json>`: each order made (its transaction, its shop's key and the
nonce it was created with), failures, and how many calls the client
re-signed after a stale nonce.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

from tests.payments.nonce_load import READY, SUMMARY, _StaleNonceCounter


def run(process: int, shop_ids: list[int], threads: int, orders: int) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()

    import logging

    from django.db import connection

    from payments import gateway_factory
    from payments.models import Shop
    from payments.services.orders import NewOrder, order_create

    retries = _StaleNonceCounter()
    client_logger = logging.getLogger("payments.gateway.client")
    client_logger.addHandler(retries)
    client_logger.setLevel(logging.INFO)
    client_logger.propagate = False

    shops = {shop.pk: shop for shop in Shop.objects.filter(pk__in=shop_ids)}
    connection.close()
    drawn = threading.local()  # this thread's last nonce, per key
    real_nonce_next = gateway_factory.nonce_next

    def recording_nonce_next(*, api_key: str) -> int:
        value = real_nonce_next(api_key=api_key)
        drawn.last = (api_key, value)
        return value

    gateway_factory.nonce_next = recording_nonce_next
    barrier = threading.Barrier(threads + 1)
    lock = threading.Lock()
    made: list[dict[str, Any]] = []
    failures: Counter[str] = Counter()
    messages: list[str] = []

    def work(index: int) -> None:
        shop = shops[shop_ids[index % len(shop_ids)]]
        try:
            barrier.wait(timeout=60)
            for n in range(orders):
                new = NewOrder(
                    reference=f"p{process}-t{index}-{n}",
                    amount_int=1_000_000 + process * 10_000 + index * 100 + n,
                    currency="BTC",
                )
                try:
                    order, _ = order_create(new=new, shop=shop)
                except Exception as exc:
                    with lock:
                        failures[type(exc).__name__] += 1
                        messages.append(f"{type(exc).__name__}: {exc}"[:500])
                    continue
                key, nonce = drawn.last
                with lock:
                    made.append(
                        {
                            "shop": shop.pk,
                            "key": key,
                            "nonce": nonce,
                            "transaction": str(order.transaction),
                            "status": order.status,
                        }
                    )
        finally:
            connection.close()  # this thread's own connection

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 60
    while barrier.n_waiting < threads and time.monotonic() < deadline:
        time.sleep(0.01)
    print(READY, flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    barrier.wait(timeout=60)
    for worker in workers:
        worker.join(timeout=120)
    return {
        "process": process,
        "orders": made,
        "failures": dict(failures),
        "failure_messages": messages[:10],
        "stale_nonce_retries": retries.count,
        "seconds": round(time.monotonic() - started, 3),
        "hung_threads": sum(worker.is_alive() for worker in workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--process", type=int, required=True)
    parser.add_argument("--shops", required=True, help="shop ids, comma-separated")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--orders", type=int, default=3, help="orders per thread")
    args = parser.parse_args()
    shop_ids = [int(value) for value in args.shops.split(",")]
    summary = run(args.process, shop_ids, args.threads, args.orders)
    print(SUMMARY + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
