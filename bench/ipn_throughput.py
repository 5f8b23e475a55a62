"""ipn_throughput: IPN requests/s ÷ requests/s of a minimal Django view; p99 at 200 req/s.

Targets: ratio ≥ 0.6, and p99 latency under 25 ms at a fixed 200 requests/s.

The service runs in gunicorn (2 workers, PostgreSQL, DJANGO_DEBUG=0). K
orders awaiting payment are seeded in the database, and one signed `paid`
IPN per order is built beforehand (payments.testing.ipn_body and
signed_headers, with the run's credentials), so that every request does
the whole job (verify the signature, store the notification, lock the
order, record the payment, move the order to paid): no IPN is sent twice.

The baseline is /bench/minimal/, a plain Django function view answering
"ok" (text/plain) behind the same middleware, in the same server, POSTed
the same kind of signed body with the same headers, from the same clients.
Closed-loop phases alternate (minimal, IPN, minimal, IPN) so that drift of
a noisy machine hits both. Then an open-loop phase sends fresh IPNs at 200
requests/s and measures latency from each request's scheduled time.

The service runs with PAYMENTS_IPN_APPLY=worker and a real Celery worker on
Redis (BENCH_IPN_APPLY=request: applied in the request, no worker; bench.ipn_apply);
in worker mode the open loop starts once the closed loop's backlog is applied,
and `store_to_applied_ms` is how long after being stored its IPNs were applied.

At the end (worker mode: once nothing is pending, waited for with a bound) the
database is checked: every IPN sent paid its order, and there are exactly as
many notifications and payments as IPNs sent, each notification applied.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Any

from bench.common import (
    Phase,
    combine,
    counting_queries,
    measure,
    measure_round,
    progress,
    require_success,
    wait_for_idle,
)
from bench.ipn_apply import (
    WORKER_CONCURRENCY,
    Appliers,
    ApplyCost,
    appliers,
    apply_cost_summary,
    apply_mode,
    store_to_applied,
    wait_drained,
)
from bench.load import (
    Expect,
    Item,
    LoadGenerator,
    LoadResult,
    latency_summary,
    machine_busy_seconds,
    used_items,
)
from bench.servers import HOST, Infrastructure, Server, ServerConfig, log
from payments.ipn import ACK

NAME = "ipn_throughput"
TARGET_RATIO = 0.6
TARGET_P99_MS = 25.0
# BENCH_IPN_RATE=<IPN/s> runs the open loop at another rate (the targets are at 200).
OPEN_LOOP_RATE = float(os.environ.get("BENCH_IPN_RATE", "200"))
# Chosen by an interleaved sweep in one run (4 rounds of 2.5 s per config, 16 connections):
# mean IPN/s sync 54, gthread x1 61, x2 71, x4 72, x8 84 (see bench/README.md). It is also
# the Procfile's web process. BENCH_IPN_SERVER=sync or =gthread:<threads> tries another.
DEFAULT_SERVER = ServerConfig(workers=2, worker_class="gthread", threads=8)
SERVER_CHOICE = (
    "gthread with 8 threads per worker: the most IPN/s in an interleaved same-run sweep of "
    "sync and gthread with 1, 2, 4 and 8 threads (2 workers each; mean IPN/s 54, 61, 71, 72, "
    "84); the threads overlap the database waits (commit flush) of a CPU-bound view"
)
AMOUNT_INT = 12_345_678
PROCESSES = 2


@dataclass(frozen=True)
class Sizes:
    connections: int
    rounds: int
    seconds_per_round: float
    warmup_seconds: float
    warmup_ipns: int
    open_loop_seconds: float
    open_loop_connections: int
    orders: int  # seeded; closed-loop phases stop early if they run out


FULL = Sizes(
    connections=16,
    rounds=2,
    seconds_per_round=5.0,
    warmup_seconds=2.0,
    warmup_ipns=400,
    open_loop_seconds=10.0,
    open_loop_connections=16,
    orders=16_000,
)
QUICK = replace(
    FULL,
    rounds=1,
    seconds_per_round=2.0,
    warmup_seconds=1.0,
    warmup_ipns=200,
    open_loop_seconds=3.0,
    orders=4_000,
)


def server_config() -> ServerConfig:
    spec = os.environ.get("BENCH_IPN_SERVER", "")
    if not spec:
        return DEFAULT_SERVER
    kind, _, threads = spec.partition(":")
    if kind == "sync":
        return ServerConfig(workers=2, worker_class="sync", threads=1)
    if kind == "gthread" and threads.isdigit():
        return ServerConfig(workers=2, worker_class="gthread", threads=int(threads))
    raise ValueError(f"BENCH_IPN_SERVER={spec!r}: use sync or gthread:<threads>")


def seed_orders(n: int, prefix: str, *, shop: Any = None) -> list[tuple[uuid.UUID, int]]:
    """n orders of `shop` (the default one when None) awaiting payment, as the gateway had
    accepted them: (transaction, amount_int)."""
    from django.utils import timezone

    from payments.models import Order
    from payments.states import OrderStatus

    now = timezone.now()
    shop_field = {} if shop is None else {"shop": shop}
    orders = [
        Order(
            **shop_field,
            reference=f"{prefix}-{i:06d}",
            amount_int=AMOUNT_INT,
            currency="BTC",
            transaction=uuid.uuid4(),
            payment_url="http://127.0.0.1/sandbox/pay/seeded",
            status=OrderStatus.AWAITING_PAYMENT,
            created=now,
            deadline=now + timedelta(days=1),
        )
        for i in range(n)
    ]
    Order.objects.bulk_create(orders, batch_size=2000)
    return [(order.transaction, order.amount_int) for order in orders if order.transaction]


def paid_ipn(transaction: uuid.UUID, amount_int: int) -> tuple[bytes, dict[str, str]]:
    from payments.choices import IpnStatus
    from payments.testing import ipn_body, signed_headers

    body = ipn_body(transaction=transaction, status=IpnStatus.PAID, amount_int=amount_int)
    return body, signed_headers(body)


def ipn_items(orders: Sequence[tuple[uuid.UUID, int]]) -> list[Item]:
    from payments.testing import IPN_PATH

    items = []
    for transaction, amount_int in orders:
        body, headers = paid_ipn(transaction, amount_int)
        items.append(Item("POST", IPN_PATH, body, tuple(headers.items())))
    return items


def transaction_of(item: Item) -> str:
    return item.body.split(b"&", 1)[0].removeprefix(b"id=").decode()


class Pool:
    """Unused IPNs: a phase takes the pool, and gives back what it did not send."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.sent: list[Item] = []

    def run(self, send: Callable[[list[Item]], LoadResult], limit: int | None = None) -> LoadResult:
        batch = self.items if limit is None else self.items[:limit]
        rest = [] if limit is None else self.items[limit:]
        result = send(batch)
        used = set(used_items(batch, PROCESSES, result.sent_per_job))
        self.sent += [batch[i] for i in sorted(used)]
        self.items = [item for i, item in enumerate(batch) if i not in used] + rest
        return result


def check_database(sent: list[Item], acknowledged: int, errors: int) -> dict[str, Any]:
    """Every IPN sent paid its order, once; nothing lost, nothing doubled."""
    from django.db.models import Count, Sum

    from payments.models import Notification, Order, Payment
    from payments.states import OrderStatus

    transactions = [transaction_of(item) for item in sent]
    paid_of_sent = 0
    for i in range(0, len(transactions), 1000):
        paid_of_sent += Order.objects.filter(
            transaction__in=transactions[i : i + 1000], status=OrderStatus.PAID
        ).count()
    notifications = Notification.objects.count()
    received = Notification.objects.aggregate(n=Sum("times_received"))["n"] or 0
    outcomes = {
        row["outcome"]: row["n"]
        for row in Notification.objects.values("outcome").annotate(n=Count("id")).order_by()
    }
    payments = Payment.objects.count()
    orders_paid = Order.objects.filter(status=OrderStatus.PAID).count()
    n = len(sent)
    correct = (
        errors == 0
        and acknowledged == n
        and notifications == n
        and payments == n
        and paid_of_sent == n
        and orders_paid == n
        and received == n
        and outcomes.get("applied") == n  # worker mode: none left pending
    )
    return {
        "correct": correct,
        "ipns_sent": n,
        "acknowledged_ok": acknowledged,
        "errors": errors,
        "notifications_stored": notifications,
        "notifications_received_total": received,
        "notification_outcomes": outcomes,
        "payments": payments,
        "orders_paid_of_those_sent": paid_of_sent,
        "orders_paid_in_database": orders_paid,
    }


def queries_per_ipn(mode: str) -> dict[str, Any]:
    """Queries of one IPN (in `mode`: the request's only) and of one minimal request, in this
    process (after the checks)."""
    from django.test import Client, override_settings

    from payments.testing import IPN_PATH

    client = Client(HTTP_HOST=HOST)
    found: dict[str, Any] = {}
    for name, path in (("ipn", IPN_PATH), ("minimal", "/bench/minimal/")):
        (transaction, amount_int), *_ = seed_orders(1, f"queries-{name}")
        body, headers = paid_ipn(transaction, amount_int)
        content_type = headers.pop("Content-Type")
        with override_settings(PAYMENTS_IPN_APPLY=mode), counting_queries() as count:
            response = client.post(path, body, content_type=content_type, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code} {response.content[:200]!r}")
        found[name] = count.summary()
    return found


def _unseeded_orders(n: int) -> list[tuple[uuid.UUID, int]]:
    """Transactions no order has: bodies for the floor view, which never looks them up."""
    return [(uuid.uuid4(), AMOUNT_INT) for _ in range(n)]


def _floor_summary(phases: list[Phase], minimal_rps: float, ipn_rps: float) -> dict[str, Any]:
    """The store-only view's req/s against the same baseline: the IPN ratio's upper bound."""
    if not phases:
        return {"measured": False, "why": "PostgreSQL only (bench.ipn_floor)"}
    floor = combine("store_only", phases)
    return {
        "what": "POST /bench/ipn-store-only/: the IPN view's checks, then one INSERT ... ON "
        "CONFLICT of the notification into a copy of the inbox table, committed, then [OK] "
        "(bench.ipn_floor): what any IPN view must do before answering, without applying",
        "ratio_to_minimal": round(floor.load.requests_per_second / minimal_rps, 3),
        "ipn_ratio_to_floor": round(ipn_rps / floor.load.requests_per_second, 3),
        "closed_loop": floor.summary(),
    }


@dataclass
class Pools:
    """The signed requests of one run: closed-loop rounds, open loop, floor view, baseline."""

    closed: Pool
    open: Pool
    floor: Pool
    minimal: list[Item]

    @classmethod
    def build(cls, sizes: Sizes) -> Pools:
        open_total = int(OPEN_LOOP_RATE * sizes.open_loop_seconds)
        log(f"{NAME}: seeding {sizes.orders} orders awaiting payment and signing one IPN each")
        items = ipn_items(seed_orders(sizes.orders, "ipn"))
        # The baseline gets a signed IPN-like body and the same headers (it does not read them).
        minimal = [Item("POST", "/bench/minimal/", items[0].body, items[0].headers)]
        # The floor view stores the same kind of signed bodies, in a table of its own.
        floor = Pool(
            [
                Item("POST", "/bench/ipn-store-only/", item.body, item.headers)
                for item in ipn_items(_unseeded_orders(len(items)))
            ]
        )
        cut = len(items) - open_total
        return cls(Pool(items[:cut]), Pool(items[cut:]), floor, minimal)


@dataclass
class IpnRounds:
    """The phases of one run against one server, and the IPNs they got acknowledged."""

    gen: LoadGenerator
    server: Server
    pg: Any
    sizes: Sizes
    pools: Pools
    measure_floor: bool
    applying: Appliers
    ipn: list[Phase] = field(default_factory=list)
    minimal: list[Phase] = field(default_factory=list)
    floor: list[Phase] = field(default_factory=list)
    acknowledged: int = 0
    errors: int = 0
    backlog_drain_s: float | None = None  # worker mode: after the closed-loop rounds
    round_drains_s: list[float] = field(default_factory=list)  # after each round's IPN phase
    apply_costs: list[ApplyCost] = field(default_factory=list)  # each IPN phase, drain included

    def _count(self, load: LoadResult) -> None:
        self.acknowledged += load.ok
        self.errors += load.errors

    def send_minimal(self, seconds: float) -> LoadResult:
        return self.gen.closed_loop(
            self.pools.minimal,
            connections=self.sizes.connections,
            expect=Expect(200, b"ok"),
            repeat=True,
            duration=seconds,
        )

    def send_ipns(self, batch: list[Item], seconds: float | None = None) -> LoadResult:
        return self.gen.closed_loop(
            batch, connections=self.sizes.connections, expect=Expect(200, ACK), duration=seconds
        )

    def send_ipns_at_rate(self, batch: list[Item]) -> LoadResult:
        return self.gen.open_loop(
            batch,
            rate=OPEN_LOOP_RATE,
            duration=self.sizes.open_loop_seconds,
            connections=self.sizes.open_loop_connections,
            expect=Expect(200, ACK),
        )

    def warm_up(self) -> None:
        log(f"{NAME}: warm-up")
        require_success("warm-up", self.send_minimal(self.sizes.warmup_seconds))
        warm = self.pools.closed.run(self.send_ipns, limit=self.sizes.warmup_ipns)
        self._count(require_success("warm-up", warm))

    def _closed_round(self, name: str, run: Callable[[], LoadResult]) -> Phase:
        return measure_round(name, self.server, run, benchmark=NAME, postgres=self.pg)

    def run_round(self, index: int) -> None:
        """Minimal, IPN, and store-only (PostgreSQL) phases of the same length."""
        seconds = self.sizes.seconds_per_round
        self.minimal.append(
            self._closed_round(f"minimal[{index}]", partial(self.send_minimal, seconds))
        )
        # The store-only view gets the same kind of requests as the IPN view.
        send_round = partial(self.send_ipns, seconds=seconds)
        phase = self._measure_ipns(index, partial(self.pools.closed.run, send_round))
        if not self.pools.closed.items:
            log(f"{NAME}: ran out of seeded orders; raise Sizes.orders")
        self._count(phase.load)
        self.ipn.append(phase)
        if self.measure_floor:
            floor_run = partial(self.pools.floor.run, send_round)
            self.floor.append(self._closed_round(f"store_only[{index}]", floor_run))

    def _measure_ipns(self, index: int, run: Callable[[], LoadResult]) -> Phase:
        """An IPN phase, then (worker mode) the wait until what it stored is applied, so that
        the worker's applying never runs in (and slows) the baseline's or the floor's phase;
        the worker's and PostgreSQL's CPU counted until then."""
        worker_before = self.applying.cpu()
        phase = self._closed_round(f"ipn[{index}]", run)
        busy_after_phase = machine_busy_seconds()
        drain = wait_drained()
        self.round_drains_s.append(drain)
        worker = self.applying.cpu().since(worker_before)
        busy = phase.load.machine_busy + machine_busy_seconds() - busy_after_phase
        self.apply_costs.append(ApplyCost(phase.load.ok, phase.load.elapsed + drain, worker, busy))
        return phase

    def open_loop(self) -> Phase:
        seconds = self.sizes.open_loop_seconds
        log(f"{NAME}: open loop, {OPEN_LOOP_RATE:.0f} IPN/s for {seconds:.0f} s")
        opened = measure(
            "ipn_open_loop",
            self.server,
            partial(self.pools.open.run, self.send_ipns_at_rate),
            postgres=self.pg,
            allow_errors=True,
        )
        self._count(opened.load)
        log(f"{NAME}: {progress(opened)}")
        return opened


def run(infra: Infrastructure, quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    config = server_config()
    mode = apply_mode()
    pools = Pools.build(sizes)
    measure_floor = infra.is_postgres
    if measure_floor:
        from bench.ipn_floor import create_table

        create_table()

    with appliers(infra, mode) as applying:  # worker mode: drained before the worker stops
        rounds, opened = _phases(infra, config, sizes, pools, measure_floor, applying)
    checks = check_database(pools.closed.sent + pools.open.sent, rounds.acknowledged, rounds.errors)
    if not checks["correct"]:
        log(f"{NAME}: DATABASE CHECK FAILED: {checks}")
    ratio, measured = _measured(infra, config, sizes, rounds, opened)
    measured["ipn_apply"] = mode
    if mode == "worker":
        measured["worker"] = f"celery worker, prefork x {WORKER_CONCURRENCY}, Redis broker"
    measured["closed_loop"]["worker_backlog_drain_s"] = rounds.backlog_drain_s
    measured["closed_loop"]["worker_round_drains_s"] = rounds.round_drains_s
    measured["closed_loop"]["until_applied"] = apply_cost_summary(
        rounds.apply_costs, measured["store_only_floor"].get("closed_loop")
    )
    measured["open_loop"]["store_to_applied_ms"] = store_to_applied(
        [transaction_of(item) for item in pools.open.sent]
    )
    measured.update(database_check=checks, queries_per_request=queries_per_ipn(mode))
    meets_target = measured["meets_ratio_target"] and measured["meets_p99_target"]
    return {
        "ratio": round(ratio, 3),
        "target": f"ratio >= {TARGET_RATIO}, and p99 < {TARGET_P99_MS:.0f} ms at "
        f"{OPEN_LOOP_RATE:.0f} IPN/s (open loop)",
        "baseline": "POST /bench/minimal/: a plain Django function view answering 'ok' "
        "(text/plain) behind the same middleware, same server and run, same clients, "
        "same signed body and headers",
        "meets_target": meets_target,
        "measured": measured,
    }


def _phases(
    infra: Infrastructure,
    config: ServerConfig,
    sizes: Sizes,
    pools: Pools,
    measure_floor: bool,
    applying: Appliers,
) -> tuple[IpnRounds, Phase]:
    """Warm-up, the closed-loop rounds and the open loop, against one server."""
    server = infra.start_server("service-ipn", config, access_log=False, port=None, **applying.env)
    with LoadGenerator(HOST, server.port, processes=PROCESSES) as gen:
        pg = infra.postgres_meter()
        rounds = IpnRounds(gen, server, pg, sizes, pools, measure_floor, applying)
        rounds.warm_up()
        for index in range(sizes.rounds):
            rounds.run_round(index)
        if applying.by_worker:
            # The closed loop stored faster than the worker applies: the open loop's IPNs
            # would wait behind that backlog, which is not what 200 IPN/s alone does.
            rounds.backlog_drain_s = wait_drained()
        wait_for_idle()
        opened = rounds.open_loop()
    infra.stop_server(server)  # every answer is in; nothing is still being written
    return rounds, opened


def _open_summary(sizes: Sizes, opened: Phase) -> dict[str, Any]:
    """The open loop's figures; a failed or never-sent request counts as infinitely slow."""
    load = opened.load
    summary = opened.summary()
    summary["latency_ms"] = latency_summary(load.latencies, unfinished=load.errors + load.dropped)
    p99 = summary["latency_ms"].get("p99")
    summary.update(
        rate_per_s=OPEN_LOOP_RATE,
        duration_s=sizes.open_loop_seconds,
        generator_max_send_lag_ms=round(load.max_send_lag * 1000, 2),
        meets_p99_target=p99 is not None and p99 < TARGET_P99_MS,
    )
    return summary


def _measured(
    infra: Infrastructure, config: ServerConfig, sizes: Sizes, rounds: IpnRounds, opened: Phase
) -> tuple[float, dict[str, Any]]:
    """The ratio, and the figures of `measured` (the database check and queries aside)."""
    ipn = combine("ipn", rounds.ipn)
    base = combine("minimal", rounds.minimal)
    ratio = ipn.load.requests_per_second / base.load.requests_per_second
    open_summary = _open_summary(sizes, opened)
    floor = _floor_summary(
        rounds.floor, base.load.requests_per_second, ipn.load.requests_per_second
    )
    floor_ratio = floor.get("ipn_ratio_to_floor")
    return ratio, {
        "what": "closed loop: requests/s with the same connections for both; ratio = "
        "IPN req/s / minimal req/s. Open loop: latency of fresh IPNs from their "
        "scheduled send time (no coordinated omission).",
        "server": f"{config.describe()}, DJANGO_DEBUG=0, {infra.database}; the same "
        "server for the baseline",
        "server_choice": SERVER_CHOICE if config == DEFAULT_SERVER else "BENCH_IPN_SERVER",
        "meets_ratio_target": ratio >= TARGET_RATIO,
        "meets_p99_target": open_summary["meets_p99_target"],
        "p99_ms_at_200_per_s": open_summary["latency_ms"].get("p99"),
        "closed_loop": {
            "connections": sizes.connections,
            "rounds": sizes.rounds,
            "seconds_per_round": sizes.seconds_per_round,
            "ipn": ipn.summary(),
            "minimal": base.summary(),
        },
        "open_loop": open_summary,
        "ratio_to_floor": floor_ratio,
        "store_only_floor": floor,
    }
