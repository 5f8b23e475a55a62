"""Two shops creating orders at once from several processes keep their own nonces.

Each shop has its own sandbox merchant account, so its own API key, nonce
sequence and call lock (payments.nonces). Three real processes of the
service (tests/payments/shop_nonce_load.py) share the test database; in
each, threads working for either shop are released together and create
orders one after the other through `order_create(shop=...)`, over real HTTP
to the sandbox served by gunicorn in a process of its own (as
tests/payments/test_nonce_processes.py serves it).

What the sandbox received, per key: it accepts a nonce only when greater
than the last one accepted for that key (a conditional UPDATE of the
account row), and stores the order in the same transaction, under that row
lock, so its orders' ids are in the order it accepted their nonces. Each
key's nonces, in that order, must be strictly increasing; none may have
been refused (no stale nonce re-signed, no failure); and every order must be
at its own shop's account, created with its own shop's key.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from payments.models import GatewayNonce, Order, Shop
from payments.services.shops import shop_create
from sandbox.accounts import account_create
from sandbox.models import SandboxAccount, SandboxOrder
from tests.conftest import is_postgres, service_env
from tests.payments.nonce_load import READY, SUMMARY
from tests.payments.test_nonce_processes import (
    SERVER_THREADS,
    SERVER_WORKERS,
    TIME_LIMIT,
    LoadProcess,
    SandboxServer,
    fail_if_connections_ran_out,
    postgres_connections,
)

PROCESSES = 3
THREADS = 8  # per process, half for each shop
ORDERS_PER_THREAD = 3
# Each load thread holds one connection while it creates its orders; the sandbox one per
# request in flight.
LOAD_CONNECTIONS = PROCESSES * THREADS + SERVER_WORKERS * SERVER_THREADS


@pytest.fixture
def sandbox(transactional_db: None, tmp_path: Path) -> Iterator[SandboxServer]:
    """The sandbox's gunicorn on the test database; stopped before the database is flushed."""
    if is_postgres():
        free, limit = postgres_connections()
        if free < LOAD_CONNECTIONS:
            pytest.fail(
                f"PostgreSQL has {free} connections free (max_connections={limit}); "
                f"this load opens up to {LOAD_CONNECTIONS}"
            )
    server = SandboxServer(tmp_path / "sandbox.log")
    try:
        server.wait_ready(timeout=TIME_LIMIT)
        yield server
    finally:
        server.stop()


def shop_with_account(name: str) -> tuple[Shop, SandboxAccount]:
    account = account_create(login=name)
    shop = shop_create(name=name, gateway_key=account.api_key, gateway_secret=account.secret)
    return shop, account


def run_load(sandbox: SandboxServer, shops: list[Shop], tmp_path: Path) -> list[dict[str, Any]]:
    """Start the processes, release them at once, and return their summaries."""
    env = service_env(
        DJANGO_SECRET_KEY=settings.SECRET_KEY,  # the shops' secrets are sealed with it
        PUBLIC_BASE_URL=sandbox.url,
        GATEWAY_API_URL=sandbox.api_url,
        GATEWAY_PAYMENT_HOST=f"{sandbox.url}/sandbox",
        LOG_LEVEL="WARNING",
    )
    shop_ids = ",".join(str(shop.pk) for shop in shops)
    load = [sys.executable, "-m", "tests.payments.shop_nonce_load", "--shops", shop_ids]
    load += ["--threads", str(THREADS), "--orders", str(ORDERS_PER_THREAD)]
    processes = [
        LoadProcess(n, env, tmp_path / f"load-{n}.log", command=[*load, "--process", str(n)])
        for n in range(PROCESSES)
    ]
    try:
        try:
            for process in processes:
                process.wait_for(READY, timeout=TIME_LIMIT)
            for process in processes:
                process.go()
            summaries = [json.loads(p.wait_for(SUMMARY, timeout=TIME_LIMIT)) for p in processes]
            exit_codes = [p.process.wait(timeout=10) for p in processes]
        except AssertionError:
            fail_if_connections_ran_out(
                [*(p.stderr() for p in processes), sandbox.log_tail(100_000)]
            )
            raise
    finally:
        for process in processes:
            process.stop()
    assert exit_codes == [0] * PROCESSES, [p.stderr() for p in processes]
    return summaries


def nonces_as_received(account: SandboxAccount, nonce_of: dict[str, int]) -> list[int]:
    """The nonces of the account's orders, in the order the sandbox accepted them."""
    transactions = SandboxOrder.objects.filter(account=account).order_by("id")
    return [nonce_of[str(t)] for t in transactions.values_list("transaction", flat=True)]


@pytest.mark.django_db(transaction=True)
def test_two_shops_creating_orders_at_once_keep_their_own_increasing_nonces(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    (shop_a, account_a), (shop_b, account_b) = shop_with_account("a"), shop_with_account("b")
    started = time.monotonic()

    summaries = run_load(sandbox, [shop_a, shop_b], tmp_path)

    elapsed = time.monotonic() - started
    made = [order for s in summaries for order in s["orders"]]
    failures = [m for s in summaries for m in s["failure_messages"]]
    retries = sum(s["stale_nonce_retries"] for s in summaries)
    print(
        f"\n{PROCESSES} processes x {THREADS} threads x {ORDERS_PER_THREAD} orders for 2 shops: "
        f"{len(made)} created, {len(failures)} failed, {retries} stale nonces, {elapsed:.1f} s"
    )
    fail_if_connections_ran_out([*failures, sandbox.log_tail(100_000)])
    assert failures == [] and [s["hung_threads"] for s in summaries] == [0] * PROCESSES
    assert retries == 0  # not one nonce refused by the sandbox
    per_shop = PROCESSES * THREADS * ORDERS_PER_THREAD // 2
    assert len(made) == 2 * per_shop
    assert all(order["status"] == "awaiting_payment" for order in made)

    for shop, account in ((shop_a, account_a), (shop_b, account_b)):
        mine = [order for order in made if order["shop"] == shop.pk]
        assert len(mine) == per_shop
        assert {order["key"] for order in mine} == {str(shop.gateway_key)}
        # Every order of the shop is at its own account, and nothing else is.
        at_account = SandboxOrder.objects.filter(account=account)
        assert {str(t) for t in at_account.values_list("transaction", flat=True)} == {
            order["transaction"] for order in mine
        }
        received = nonces_as_received(account, {o["transaction"]: o["nonce"] for o in mine})
        assert len(received) == per_shop
        assert all(a < b for a, b in itertools.pairwise(received)), received
        account.refresh_from_db()
        assert account.last_nonce == received[-1]
        assert GatewayNonce.objects.get(api_key=str(shop.gateway_key)).last_value == received[-1]
        assert Order.objects.filter(shop=shop, status="awaiting_payment").count() == per_shop
    # The two sequences are each the key's own: neither key's counter moved the other's.
    assert not GatewayNonce.objects.filter(api_key=settings.GATEWAY_API_KEY).exists()
