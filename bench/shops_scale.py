"""shops_scale: IPN throughput and order creation with 1,000 shops in the database ÷ with 1.

Target: both ratios ≥ 0.95.

Two databases in one run, migrated alike: the run's own (`merchant_bench`),
holding the default shop alone, and `<it>_shops`, holding 1,000 shops (the
default one and 999 with a gateway key and a sealed secret each:
bench.shops_seed). There the notifications and orders under test belong to
`shop-0500`, found by its Rest-Key (IPN) and its API token (orders), so the
lookups by key are what is measured; with 1 shop they are the default
shop's. Each database has a server of the service (the Procfile's web
process: gunicorn gthread, 2 workers x 8 threads, DJANGO_DEBUG=0); one
sandbox server (the first database) holds both merchant accounts.

Phases take turns: in each round, each server alone for the same load (who
goes first alternates), so that drift hits both. The headline figures are
each side's best round: whatever else runs on the machine only ever slows a
phase down, so the least disturbed round is the closest to what the server
can do (as timeit takes the fastest run). The ratios of all rounds summed
are reported beside them.

- IPN: closed loop, 16 connections, one fresh signed `paid` IPN per seeded
  order, as ipn_throughput: ipn_ratio = best IPN req/s with 1,000 shops ÷
  best with 1 shop. Server CPU per IPN is reported beside it.
- orders: POST /api/orders/ from 4 connections, as orders_cpu: orders_ratio =
  least server CPU per order with 1 shop ÷ least with 1,000 shops.

At the end each database is checked: every IPN acknowledged paid its order
of the shop under test, and nothing else was stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.common import Phase, combine, measure_round, require_success
from bench.load import Expect, Item, LoadGenerator, LoadResult, used_items
from bench.servers import (
    BASE_DIR,
    HOST,
    BenchError,
    Infrastructure,
    Server,
    ServerConfig,
    log,
    prepare_postgres,
)

NAME = "shops_scale"
TARGET = 0.95
SHOPS = 1000
SERVICE = ServerConfig(workers=2, worker_class="gthread", threads=8)  # the Procfile's web
SANDBOX = ServerConfig(workers=2, worker_class="gthread", threads=4)
ACK = b"[OK]"
GENERATOR_PROCESSES = 2


@dataclass(frozen=True)
class Sizes:
    rounds: int
    ipn_seconds: float
    ipn_connections: int
    ipn_warmup: int  # per server
    orders_per_round: int  # per server
    order_connections: int
    order_warmup: int  # per server
    seeded_orders: int  # per database; an IPN phase stops early if they run out


# Many short rounds rather than a few long ones: the more rounds, the likelier each side
# has one that nothing else on the machine disturbed.
FULL = Sizes(
    rounds=10,
    ipn_seconds=3.0,
    ipn_connections=16,
    ipn_warmup=300,
    orders_per_round=60,
    order_connections=4,
    order_warmup=40,
    seeded_orders=12_000,
)
QUICK = replace(FULL, rounds=2, ipn_seconds=2.0, orders_per_round=30, seeded_orders=3000)


@dataclass
class Side:
    """One database and the service's server on it: 1 shop, or 1,000."""

    label: str
    database_url: str
    seeded: dict[str, Any]
    server: Server | None = None
    ipns: list[Item] = field(default_factory=list)  # not sent yet
    order_headers: tuple[tuple[str, str], ...] = ()
    gen: LoadGenerator | None = None  # generator processes of its own, aimed at its server
    ipn_phases: list[Phase] = field(default_factory=list)
    order_phases: list[Phase] = field(default_factory=list)
    ipns_sent: int = 0
    orders_made: int = 0


def _database_env(infra: Infrastructure, database_url: str) -> dict[str, str]:
    return {**infra.env(), "DATABASE_URL": database_url}


def _python(infra: Infrastructure, database_url: str, args: list[str], what: str) -> str:
    """`python <args>` in the servers' environment on `database_url`; its stdout."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=_database_env(infra, database_url),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{what} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def _second_database(infra: Infrastructure) -> str:
    """`<the run's database>_shops`, made afresh and migrated (a file beside it on SQLite)."""
    if not infra.is_postgres:
        return f"sqlite:///{Path(infra.var_dir) / 'bench-shops.sqlite3'}"
    parts = urlsplit(infra.database_url)
    url = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_shops"))
    if not prepare_postgres(url):
        raise BenchError(f"cannot create the second database {url}")
    return url


def _prepare(infra: Infrastructure, sizes: Sizes) -> list[Side]:
    many_url = _second_database(infra)
    log(f"{NAME}: migrating {urlsplit(many_url).path.lstrip('/')}")
    _python(infra, many_url, ["manage.py", "migrate", "--noinput", "-v", "0"], "migrate")
    sides = []
    for label, url, shops in (("1_shop", infra.database_url, 1), ("1000_shops", many_url, SHOPS)):
        log(f"{NAME}: seeding {shops} shop(s) and {sizes.seeded_orders} orders ({label})")
        args = ["-m", "bench.shops_seed", "seed", "--shops", str(shops)]
        out = _python(infra, url, [*args, "--orders", str(sizes.seeded_orders)], "seeding")
        sides.append(Side(label, url, json.loads(out)))
    return sides


def _sandbox_accounts(sides: list[Side]) -> None:
    """Each shop under test's merchant account, in the sandbox's database (the first)."""
    from sandbox.accounts import account_ensure

    for side in sides:
        seeded = side.seeded
        account_ensure(api_key=seeded["api_key"], secret=seeded["api_secret"], login=seeded["shop"])


def _signed_ipns(side: Side) -> list[Item]:
    """One signed `paid` IPN per seeded order, with its shop's gateway account."""
    from payments.choices import IpnStatus
    from payments.testing import IPN_PATH, ipn_body, signed_headers

    seeded, items = side.seeded, []
    for transaction in seeded["transactions"]:
        body = ipn_body(transaction=transaction, status=IpnStatus.PAID, amount_int=12_345_678)
        headers = signed_headers(body, api_key=seeded["api_key"], api_secret=seeded["api_secret"])
        items.append(Item("POST", IPN_PATH, body, tuple(headers.items())))
    return items


def _answers(server: Server, token: str) -> int:
    import http.client

    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        conn.request("GET", "/api/orders/", headers={"Authorization": f"Token {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def _order_headers(side: Side) -> None:
    """The shop's API token: its orders are the shop's under test."""
    assert side.server is not None
    if _answers(side.server, side.seeded["token"]) != 200:
        raise BenchError(f"{side.label}: the API refuses the shop's token")
    side.order_headers = (
        ("Authorization", f"Token {side.seeded['token']}"),
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
        ("User-Agent", "merchant-bench"),
    )


def _order_items(side: Side, n: int) -> list[Item]:
    assert side.server is not None
    first, side.orders_made = side.orders_made, side.orders_made + n
    body = {
        "amount": "12.50",
        "currency": "USD",
        "description": "Benchmark order",
        "return_success": f"{side.server.url}/shop/thanks",
        "return_failure": f"{side.server.url}/shop/cart",
    }
    return [
        Item(
            "POST",
            "/api/orders/",
            json.dumps({"reference": f"bench-{i:06d}", **body}).encode(),
            side.order_headers,
        )
        for i in range(first, side.orders_made)
    ]


@dataclass
class Rounds:
    """Each server alone in turn, for the same load, with generator processes of its own."""

    sizes: Sizes
    sandbox: Server
    pg: Any

    def send_ipns(self, side: Side, *, seconds: float | None, limit: int | None) -> LoadResult:
        assert side.gen is not None
        batch = side.ipns if limit is None else side.ipns[:limit]
        expect = Expect(200, ACK)
        connections = self.sizes.ipn_connections
        load = side.gen.closed_loop(batch, connections=connections, expect=expect, duration=seconds)
        used = set(used_items(batch, GENERATOR_PROCESSES, load.sent_per_job))
        side.ipns = [item for i, item in enumerate(side.ipns) if i not in used]
        side.ipns_sent += load.ok
        if not side.ipns:
            log(f"{NAME}: {side.label} ran out of seeded orders; raise seeded_orders")
        return load

    def send_orders(self, side: Side, n: int) -> LoadResult:
        assert side.gen is not None
        items = _order_items(side, n)
        connections = self.sizes.order_connections
        return side.gen.closed_loop(items, connections=connections, expect=Expect(201))

    def warm_up(self, side: Side) -> None:
        log(f"{NAME}: warm-up of {side.label}")
        require_success("warm-up", self.send_ipns(side, seconds=None, limit=self.sizes.ipn_warmup))
        require_success("warm-up", self.send_orders(side, self.sizes.order_warmup))

    def _phase(self, name: str, side: Side, run: Callable[[], LoadResult]) -> Phase:
        assert side.server is not None
        others = {"sandbox": self.sandbox}
        return measure_round(
            name, side.server, run, benchmark=NAME, others=others, postgres=self.pg
        )

    def run_round(self, index: int, sides: list[Side]) -> None:
        """IPNs, then orders, to each server in turn; who goes first alternates."""
        turn = sides if index % 2 == 0 else sides[::-1]
        for side in turn:
            send = partial(self.send_ipns, side, seconds=self.sizes.ipn_seconds, limit=None)
            side.ipn_phases.append(self._phase(f"ipn[{index}] {side.label}", side, send))
        for side in turn:
            send_orders = partial(self.send_orders, side, self.sizes.orders_per_round)
            side.order_phases.append(
                self._phase(f"orders[{index}] {side.label}", side, send_orders)
            )


def _check(infra: Infrastructure, side: Side) -> dict[str, Any]:
    """Every IPN acknowledged paid an order of the shop under test; nothing else happened."""
    found = json.loads(
        _python(infra, side.database_url, ["-m", "bench.shops_seed", "check"], "check")
    )
    shop = side.seeded["shop"]
    applied = found["notifications"].get(f"{shop} applied", 0)
    paid = found["orders"].get(f"{shop} paid", 0)
    other_outcomes = {k: v for k, v in found["notifications"].items() if k != f"{shop} applied"}
    correct = applied == paid == found["payments"] == side.ipns_sent and not other_outcomes
    return {"correct": correct, "ipns_acknowledged": side.ipns_sent, **found}


def _servers(infra: Infrastructure, sides: list[Side]) -> Server:
    """The sandbox (its CPU is not counted), and a server of the service per database."""
    sandbox = infra.start_server("sandbox", SANDBOX, SANDBOX_ENABLED="1")
    for side in sides:
        side.server = infra.start_server(
            f"service-{side.label}",
            SERVICE,
            DATABASE_URL=side.database_url,
            GATEWAY_API_URL=f"{sandbox.url}/sandbox/api/",
            GATEWAY_PAYMENT_HOST=f"{sandbox.url}/sandbox",
        )
        _order_headers(side)
    return sandbox


def run(infra: Infrastructure, quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    sides = _prepare(infra, sizes)
    _sandbox_accounts(sides)
    for side in sides:
        side.ipns = _signed_ipns(side)
    sandbox = _servers(infra, sides)
    with ExitStack() as stack:
        for side in sides:
            assert side.server is not None
            generator = LoadGenerator(HOST, side.server.port, processes=GENERATOR_PROCESSES)
            side.gen = stack.enter_context(generator)
        rounds = Rounds(sizes, sandbox, infra.postgres_meter())
        for side in sides:
            rounds.warm_up(side)
        for index in range(sizes.rounds):
            rounds.run_round(index, sides)
    for server in list(infra.servers):
        infra.stop_server(server)  # every answer is in before the databases are read
    checks = {side.label: _check(infra, side) for side in sides}
    return _result(infra, sizes, sides, checks)


def _rps(phase: Phase) -> float:
    return phase.load.requests_per_second


def _cpu(phase: Phase) -> float:
    return phase.cpu_per_request_ms()


def _per_round(
    one: list[Phase], many: list[Phase], figure: Callable[[Phase], float]
) -> list[float]:
    """Round by round, `figure` with 1,000 shops ÷ with 1 shop."""
    return [round(figure(b) / figure(a), 3) for a, b in zip(one, many, strict=True)]


def _result(
    infra: Infrastructure, sizes: Sizes, sides: list[Side], checks: dict[str, Any]
) -> dict[str, Any]:
    one, many = sides
    ipn_ratio = max(map(_rps, many.ipn_phases)) / max(map(_rps, one.ipn_phases))
    orders_ratio = min(map(_cpu, one.order_phases)) / min(map(_cpu, many.order_phases))
    correct = all(check["correct"] for check in checks.values())
    return {
        "ratio": round(min(ipn_ratio, orders_ratio), 3),
        "target": f"IPN req/s and order creation (server CPU per order) with {SHOPS} shops "
        f">= {TARGET} x with 1 shop",
        "baseline": "a database holding the default shop alone, its own server of the same "
        "configuration, the same run, phases taking turns",
        "meets_target": ipn_ratio >= TARGET and orders_ratio >= TARGET and correct,
        "measured": {
            "ipn_ratio": round(ipn_ratio, 3),
            "orders_ratio": round(orders_ratio, 3),
            **_measured(infra, sizes, sides, checks),
        },
    }


def _measured(
    infra: Infrastructure, sizes: Sizes, sides: list[Side], checks: dict[str, Any]
) -> dict[str, Any]:
    one, many = sides
    ipn = {s.label: combine("ipn", s.ipn_phases) for s in sides}
    orders = {s.label: combine("orders", s.order_phases) for s in sides}
    return {
        "what": "ipn_ratio = best-round IPN req/s (closed loop, 16 connections) with 1,000 "
        "shops / with 1; orders_ratio = least-round server CPU per POST /api/orders/ with 1 "
        "shop / with 1,000; ratio = the lower. *_all_rounds: the same of all rounds summed",
        "server": f"{SERVICE.describe()} per database, DJANGO_DEBUG=0, {infra.database}",
        "shops": {s.label: s.seeded["shops"] for s in sides},
        "shop_under_test": {s.label: s.seeded["shop"] for s in sides},
        "rounds": sizes.rounds,
        "ipn_ratio_all_rounds": round(_rps(ipn[many.label]) / _rps(ipn[one.label]), 3),
        "ipn_cpu_ratio_all_rounds": round(_cpu(ipn[one.label]) / _cpu(ipn[many.label]), 3),
        "orders_ratio_all_rounds": round(_cpu(orders[one.label]) / _cpu(orders[many.label]), 3),
        "ipn_rps_per_round": {s.label: [round(_rps(p), 1) for p in s.ipn_phases] for s in sides},
        "ipn_ratio_per_round": _per_round(one.ipn_phases, many.ipn_phases, _rps),
        "orders_cpu_ms_per_round": {
            s.label: [round(_cpu(p), 2) for p in s.order_phases] for s in sides
        },
        "ipn": {label: phase.summary() for label, phase in ipn.items()},
        "orders": {label: phase.summary() for label, phase in orders.items()},
        "database_check": checks,
    }
