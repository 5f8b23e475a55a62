"""mixed_load: a mixed scenario under load, then the database checked; mixed req/s ÷ minimal.

No numeric target (issue 9 asks for the figures and for the service to stay
correct under load): the benchmark meets its target when the database check
is correct.

Everything runs on loopback as in production: the service in gunicorn
(gthread, 2 workers x 8 threads, DJANGO_DEBUG=0, PostgreSQL), the sandbox
gateway as its own gunicorn server, Redis as the Celery broker
(BENCH_BROKER_URL, emptied first), two real `celery worker` processes and
`celery beat`, with the reconciliation sweeps every few seconds and shop
webhooks on (POSTed by the workers to the sandbox server's /bench/minimal/),
so that sweeps and deliveries run alongside the requests.

Each measured round is one closed-loop phase (16 connections, bounded in
time) of requests in random order:

- order creation: POST /api/orders/ with a token and an Idempotency-Key
  (each goes to the sandbox's merchant/order/create over HTTP);
- notifications as the gateway sends them, signed with the service's
  credentials, for orders created in earlier rounds: `paid`; `partial`, then
  `paid` of the same payment in a later round; `cancelled`;
- the same signed body again: some sent as three concurrent copies, some
  re-sent in a later round (the gateway's retries);
- forgeries against orders that nothing else touches: a bad signature, an
  unknown Rest-Key, and a correctly signed body over 64 KiB;
- reads: GET /api/orders/ and GET /api/orders/<id>/.

Rounds alternate with phases of the baseline, GET /bench/minimal/ (a plain
Django view answering "ok") in the same server from the same connections:
ratio = mixed requests/s ÷ minimal requests/s.

The closed-loop rounds run at saturation (their latency is mostly queueing).
After them, an open-loop phase sends the same kind of mix (built the same way:
fresh orders, the next notifications of earlier orders, duplicates, forgeries,
reads) at a fixed rate, a fixed fraction of the mixed requests/s the
closed-loop rounds of the same run measured, for a bounded time: request i is
due at start + i / rate (three concurrent copies share one due time), latency
counts from the due time (no coordinated omission), and what was never
answered as expected counts as infinitely slow.

Then the workers finish the webhook deliveries, everything stops, and the
database is checked against what the clients saw: every acknowledged
notification stored once and applied once, every order in the state its
acknowledged notifications say with exactly the payments they imply,
forgeries left nothing behind, every order change has one shop event,
delivered once.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from bench.common import (
    Phase,
    measure,
    measure_round,
    payments_tables,
    progress,
    require_success,
    wait_for_idle,
)
from bench.load import (
    Item,
    KindResult,
    LoadGenerator,
    LoadResult,
    item_outcomes,
    latency_summary,
    merge_kinds,
)
from bench.mixed_checks import Before, check_database
from bench.mixed_scenario import EXPECTED, OK, PROCESSES, REFERENCE_PREFIX, Meta, Scenario
from bench.servers import (
    HOST,
    BenchError,
    CeleryProcess,
    CpuSnapshot,
    Infrastructure,
    ServerConfig,
    free_port,
    log,
)
from payments.choices import NotificationOutcome, Sweep

NAME = "mixed_load"
SERVICE = ServerConfig(workers=2, worker_class="gthread", threads=8)  # the Procfile's web
SANDBOX = ServerConfig(workers=2, worker_class="gthread", threads=4)
WORKERS = 2
WORKER_CONCURRENCY = 2  # the Procfile's worker
# Sweeps every few seconds so that they run during the rounds, racing the requests.
SWEEP_SECONDS = f"{Sweep.APPLY_PENDING}=2,{Sweep.EXPIRE}=3,{Sweep.STUCK}=5,{Sweep.LEDGER}=3"
# The open loop's rate: this fraction of the closed-loop mixed requests/s of the same run.
OPEN_LOOP_FRACTION = 0.5
OPEN_LOOP_MIN_RATE = 5
OPEN_LOOP_RULE = (
    f"{OPEN_LOOP_FRACTION:.0%} of the mixed requests/s measured by this run's closed-loop "
    f"rounds, rounded to a whole number (at least {OPEN_LOOP_MIN_RATE}/s)"
)


@dataclass(frozen=True)
class Sizes:
    connections: int
    rounds: int
    seconds_per_round: float
    minimal_seconds: float
    warmup_creates: int
    drain_seconds: float
    open_loop_seconds: float


FULL = Sizes(
    connections=16,
    rounds=4,
    seconds_per_round=8.0,
    minimal_seconds=4.0,
    warmup_creates=48,
    drain_seconds=60.0,
    open_loop_seconds=20.0,
)
QUICK = replace(
    FULL,
    rounds=2,
    seconds_per_round=3.0,
    minimal_seconds=1.5,
    warmup_creates=24,
    drain_seconds=30.0,
    open_loop_seconds=4.0,
)


# --- running it ----------------------------------------------------------------------

# Emptied first (bench.common.payments_tables): the sweeps of this benchmark's workers act
# on every row, so rows that other benchmarks of the run left would add work of theirs.


def _empty_payments_tables(infra: Infrastructure) -> None:
    if not infra.is_postgres:
        return  # SQLite: the checks count what is new instead
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(payments_tables())} CASCADE")


def _api_token() -> str:
    """A new API token of the default shop (the key is only ever shown when made)."""
    from payments.services.shops import api_token_create
    from payments.shops import shop_default

    _, key = api_token_create(shop=shop_default(), name="bench-mixed-shop")
    return key


def _drain(order_reference_prefix: str, seconds: float) -> dict[str, Any]:
    """Wait (bounded) until the workers delivered every shop event of the scenario's orders."""
    from payments.models import Notification, ShopEventDelivery

    started = time.monotonic()
    pending = waiting = -1
    while time.monotonic() - started < seconds:
        pending = ShopEventDelivery.objects.filter(
            event__order__reference__startswith=order_reference_prefix,
            delivered_at__isnull=True,
            given_up_at__isnull=True,
        ).count()
        waiting = Notification.objects.filter(
            order__reference__startswith=order_reference_prefix,
            outcome__in=(NotificationOutcome.PENDING, NotificationOutcome.ERROR),
        ).count()
        if pending == 0 and waiting == 0:
            break
        time.sleep(0.25)
    return {
        "seconds": round(time.monotonic() - started, 2),
        "shop_events_pending": pending,
        "notifications_pending": waiting,
    }


def _kinds_summary(kinds: dict[str, KindResult], elapsed: float) -> dict[str, Any]:
    return {kind: kinds[kind].summary(elapsed) for kind in EXPECTED if kind in kinds}


def run(infra: Infrastructure, quick: bool) -> dict[str, Any]:
    from sandbox.accounts import ensure_configured_account

    if not infra.is_postgres:
        log(f"{NAME}: not on PostgreSQL: the figures are not comparable")
    sizes = QUICK if quick else FULL
    _empty_payments_tables(infra)
    broker = infra.prepare_broker()
    token = _api_token()
    ensure_configured_account()  # the sandbox account of the service's key
    sandbox = infra.start_server("sandbox", SANDBOX, SANDBOX_ENABLED="1", CELERY_BROKER_URL=broker)
    port = free_port()
    service_url = f"http://{HOST}:{port}"
    common: dict[str, str] = {
        "CELERY_BROKER_URL": broker,
        "GATEWAY_API_URL": f"{sandbox.url}/sandbox/api/",
        "GATEWAY_PAYMENT_HOST": f"{sandbox.url}/sandbox",
        "SHOP_WEBHOOK_URL": f"{sandbox.url}/bench/minimal/",
        "SHOP_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "PAYMENTS_SWEEP_SECONDS": SWEEP_SECONDS,
    }
    service = infra.start_server("service-mixed", SERVICE, access_log=False, port=port, **common)
    celery: list[CeleryProcess] = []
    try:
        for n in range(1, WORKERS + 1):
            celery.append(
                infra.start_worker(
                    f"worker{n}",
                    concurrency=WORKER_CONCURRENCY,
                    public_base_url=service_url,
                    **common,
                )
            )
        celery.append(infra.start_beat(public_base_url=service_url, **common))
        return _run(infra, sizes, service_url, token, sandbox, service, celery)
    finally:
        for process in celery:
            infra.stop_celery(process)


def _celery_cpu(celery: list[CeleryProcess]) -> CpuSnapshot:
    return CpuSnapshot.of([pid for p in celery for pid in p.pids()])


def _log_phase(phase: Phase, sent: int, planned: int) -> None:
    load = phase.load
    log(
        f"{NAME}: {progress(phase)}; {sent} of {planned} sent"
        + (f", {load.errors} UNEXPECTED e.g. {load.error_samples[:2]}" if load.errors else "")
    )


@dataclass
class Parties:
    """What a phase runs against: the service, the processes whose CPU it counts."""

    gen: LoadGenerator
    service: Any
    others: dict[str, Any]  # the sandbox's server
    pg: Any
    celery: list[CeleryProcess]


@dataclass
class Rounds:
    """The closed-loop rounds (minimal, mixed, minimal, mixed, ...) and what they measured."""

    parties: Parties
    sizes: Sizes
    scenario: Scenario
    mixed: list[Phase] = field(default_factory=list)
    minimal: list[Phase] = field(default_factory=list)
    per_round: list[dict[str, Any]] = field(default_factory=list)
    celery_cpu: float = 0.0
    unexpected: int = 0
    rate: float = 0.0  # mixed requests/s seen so far

    def send_minimal(self, seconds: float) -> LoadResult:
        minimal = [Item("GET", "/bench/minimal/", headers=(("User-Agent", "merchant-bench"),))]
        return self.parties.gen.closed_loop(
            minimal, connections=self.sizes.connections, expect=OK, repeat=True, duration=seconds
        )

    def send_round(self, items: list[Item], seconds: float | None) -> LoadResult:
        return self.parties.gen.closed_loop(
            items,
            connections=self.sizes.connections,
            expect=OK,  # each item carries its own expectation
            duration=seconds,
            record_outcomes=True,
        )

    def warm_up(self) -> None:
        log(f"{NAME}: warm-up ({self.sizes.warmup_creates} orders, reads)")
        require_success("warm-up", self.send_minimal(1.0))
        items, metas = self.scenario.build_round(self.sizes.warmup_creates)
        began = time.monotonic()
        warm = self.send_round(items, None)
        self.scenario.record(items, metas, warm)
        self.unexpected += warm.errors
        self.rate = warm.ok / max(time.monotonic() - began, 0.1)
        if warm.errors:
            log(f"{NAME}: warm-up: {warm.errors} unexpected answers, e.g. {warm.error_samples[:2]}")

    def run_round(self, index: int) -> None:
        """A minimal phase, then a mixed one."""
        p = self.parties
        self.minimal.append(
            measure_round(
                f"minimal[{index}]",
                p.service,
                partial(self.send_minimal, self.sizes.minimal_seconds),
                benchmark=NAME,
                others=p.others,
                postgres=p.pg,
            )
        )
        wait_for_idle()
        self._mixed_round(index)

    def _mixed_round(self, index: int) -> None:
        p, seconds = self.parties, self.sizes.seconds_per_round
        # More requests than the round's time allows at the rate seen so far (3.5 or so
        # per order created): the round ends on time, and what was not sent is
        # dropped (creates, reads, forgeries) or sent in a later round (notifications).
        creates = max(8, int(self.rate * seconds * 2 / 3.5))
        items, metas = self.scenario.build_round(creates)
        celery_before = _celery_cpu(p.celery)
        phase = measure(
            f"mixed[{index}]",
            p.service,
            partial(self.send_round, items, seconds),
            others=p.others,
            postgres=p.pg,
            allow_errors=True,
        )
        self.celery_cpu += _celery_cpu(p.celery).since(celery_before)
        sent = self.scenario.record(items, metas, phase.load)
        self.unexpected += phase.load.errors
        self.rate = phase.load.requests_per_second or self.rate
        _log_phase(phase, sent, len(items))
        self.mixed.append(phase)
        self.per_round.append(
            {
                "requests": phase.load.requests,
                "requests_per_s": round(phase.load.requests_per_second, 1),
                "planned": len(items),
                "kinds": {k: v.ok + v.errors for k, v in phase.load.by_kind.items()},
            }
        )


def _run(
    infra: Infrastructure,
    sizes: Sizes,
    service_url: str,
    token: str,
    sandbox: Any,
    service: Any,
    celery: list[CeleryProcess],
) -> dict[str, Any]:
    scenario = Scenario(service_url, token)
    before = Before.take()
    with LoadGenerator(HOST, service.port, processes=PROCESSES) as gen:
        parties = Parties(gen, service, {"sandbox": sandbox}, infra.postgres_meter(), celery)
        rounds = Rounds(parties, sizes, scenario)
        rounds.warm_up()
        for index in range(sizes.rounds):
            rounds.run_round(index)
        wait_for_idle()
        open_loop, open_unexpected = _open_loop(parties, scenario, sizes, _combine(rounds.mixed))

    log(f"{NAME}: waiting for the workers to deliver the shop events")
    drained = _drain(REFERENCE_PREFIX, sizes.drain_seconds)
    for process in celery:
        infra.stop_celery(process)
    infra.stop_server(service)
    infra.stop_server(sandbox)
    checks = check_database(scenario, before, rounds.unexpected + open_unexpected)
    if not checks["correct"]:
        log(f"{NAME}: DATABASE CHECK FAILED: {checks['problems']}")
    measured = {**_rounds_figures(infra, sizes, rounds), "open_loop": open_loop}
    ratio = (
        _combine(rounds.mixed).requests_per_second / _combine(rounds.minimal).requests_per_second
    )
    return {
        "ratio": round(ratio, 3),
        "target": "no numeric target in issue 9: correct under load (database_check.correct), "
        "requests/s, latency per kind and the ratio reported",
        "baseline": "GET /bench/minimal/: a plain Django function view answering 'ok' "
        "(text/plain), same server and run, same connections, phases alternating with "
        "the mixed rounds",
        "meets_target": bool(checks["correct"]),
        "measured": {**measured, "drain": drained, "database_check": checks},
    }


def _mixed_summary(rounds: Rounds) -> dict[str, Any]:
    """The mixed rounds' figures, with the CPU of each party."""
    phases = rounds.mixed
    summary = _combine(phases).summary()
    summary["server_cpu_s"] = round(sum(p.server_cpu for p in phases), 3)
    summary["sandbox_cpu_s"] = round(sum(p.other_cpu.get("sandbox", 0.0) for p in phases), 3)
    if any("postgres" in p.other_cpu for p in phases):
        summary["postgres_cpu_s"] = round(sum(p.other_cpu.get("postgres", 0.0) for p in phases), 3)
    summary["celery_cpu_s"] = round(rounds.celery_cpu, 3)
    return summary


def _rounds_figures(infra: Infrastructure, sizes: Sizes, rounds: Rounds) -> dict[str, Any]:
    mixed_load = _combine(rounds.mixed)
    kinds = merge_kinds(p.load.by_kind for p in rounds.mixed)
    return {
        "what": "closed loop, mixed requests in random order; ratio = mixed requests/s "
        "(answered as expected, 403/413 of forgeries included) / minimal requests/s",
        "server": f"{SERVICE.describe()}, DJANGO_DEBUG=0, {infra.database}",
        "sandbox": f"separate server ({SANDBOX.describe()}) on loopback",
        "celery": f"{WORKERS} workers (prefork x {WORKER_CONCURRENCY}) and beat on "
        f"{infra.broker_url}; sweeps {SWEEP_SECONDS}; shop webhooks to the sandbox "
        "server's /bench/minimal/",
        "connections": sizes.connections,
        "rounds": sizes.rounds,
        "seconds_per_round": sizes.seconds_per_round,
        "mixed": _mixed_summary(rounds),
        "minimal": _combine(rounds.minimal).summary(),
        "per_kind": _kinds_summary(kinds, mixed_load.elapsed),
        "per_round": rounds.per_round,
        "latency_all_ms": latency_summary(mixed_load.latencies),
    }


# --- the open loop ---------------------------------------------------------------------


@dataclass
class OpenLoopPlan:
    rate: int
    seconds: float
    total: int  # requests scheduled: the first `total` of items
    items: list[Item]
    metas: list[Meta]
    due: list[float]


def _open_loop_plan(scenario: Scenario, sizes: Sizes, closed_rps: float) -> OpenLoopPlan:
    rate = max(OPEN_LOOP_MIN_RATE, round(OPEN_LOOP_FRACTION * closed_rps))
    seconds = sizes.open_loop_seconds
    total = int(rate * seconds)
    # Planned like a closed round (about twice what is sent, 3.5 or so requests per order
    # created), so that the first `total` requests of the shuffled round are the same kind
    # of mix; the rest is never sent (notifications stay pending, orders are never made).
    items, metas = scenario.build_round(max(8, math.ceil(total / 1.75)))
    if len(items) < total:
        raise BenchError(f"open loop: {len(items)} requests planned, {total} needed")
    due: list[float] = []
    for i, meta in enumerate(metas[:total]):
        # The concurrent copies follow their original: the same due time, sent together.
        concurrent = meta.kind == "ipn_duplicate_concurrent" and bool(due)
        due.append(due[-1] if concurrent else i / rate)
    return OpenLoopPlan(rate, seconds, total, items, metas, due)


def _open_loop(
    parties: Parties, scenario: Scenario, sizes: Sizes, closed: LoadResult
) -> tuple[dict[str, Any], int]:
    """The mix at a fixed rate below capacity: latency from the due times, per kind.

    Returns the figures and the number of unexpected answers (for the database check).
    """
    closed_rps = closed.requests_per_second
    plan = _open_loop_plan(scenario, sizes, closed_rps)
    log(
        f"{NAME}: open loop, {plan.rate} req/s ({OPEN_LOOP_RULE}: closed loop {closed_rps:.1f} "
        f"req/s) for {plan.seconds:.0f} s, {plan.total} requests"
    )

    def send() -> LoadResult:
        return parties.gen.open_loop(
            plan.items,
            rate=plan.rate,
            duration=plan.seconds,
            connections=sizes.connections,
            expect=OK,  # each item carries its own expectation
            record_outcomes=True,
            due=plan.due,
        )

    celery_before = _celery_cpu(parties.celery)
    phase = measure(
        "mixed_open_loop",
        parties.service,
        send,
        others=parties.others,
        postgres=parties.pg,
        allow_errors=True,
    )
    celery_cpu = _celery_cpu(parties.celery).since(celery_before)
    sent = scenario.record(plan.items, plan.metas, phase.load)
    _log_phase(phase, sent, plan.total)
    out = _open_loop_figures(plan, phase, sent, closed_rps, sizes)
    out["celery_cpu_s"] = round(celery_cpu, 3)
    _open_loop_extras(out, phase)
    return out, phase.load.errors


def _open_loop_per_kind(plan: OpenLoopPlan, load: LoadResult) -> tuple[dict[str, Any], int]:
    """Scheduled, sent, answered, as expected, errors, dropped and latency per kind; and
    the requests answered."""
    metas = plan.metas
    scheduled = Counter(meta.kind for meta in metas[: plan.total])
    sent_by_kind: Counter[str] = Counter()
    answered_by_kind: Counter[str] = Counter()
    for index, status, _ in item_outcomes(plan.items, PROCESSES, load.outcomes_per_job):
        sent_by_kind[metas[index].kind] += 1
        answered_by_kind[metas[index].kind] += status != 0
    per_kind: dict[str, Any] = {}
    for kind in EXPECTED:
        if not scheduled[kind]:
            continue
        found = load.by_kind.get(kind, KindResult())
        dropped = scheduled[kind] - sent_by_kind[kind]
        per_kind[kind] = {
            "scheduled": scheduled[kind],
            "sent": sent_by_kind[kind],
            "answered": answered_by_kind[kind],
            "ok": found.ok,
            "errors": found.errors,
            "dropped": dropped,
            # Unexpected answers and requests never sent count as infinitely slow (null).
            "latency_ms": latency_summary(found.latencies, unfinished=found.errors + dropped),
            "statuses": {str(k): v for k, v in sorted(found.statuses.items())},
        }
        if found.error_samples:
            per_kind[kind]["error_samples"] = found.error_samples
    return per_kind, sum(answered_by_kind.values())


def _open_loop_figures(
    plan: OpenLoopPlan, phase: Phase, sent: int, closed_rps: float, sizes: Sizes
) -> dict[str, Any]:
    load, total = phase.load, plan.total
    per_kind, answered = _open_loop_per_kind(plan, load)
    return {
        "what": "open loop after the closed-loop rounds: the same kind of mix (built like a "
        "round) at a fixed rate; request i due at start + i / rate (the three concurrent "
        "copies of a notification share one due time); latency from the due time (no "
        "coordinated omission); unexpected answers and requests never sent count as "
        "infinitely slow (a percentile they reach is null)",
        "rate_per_s": plan.rate,
        "rate_rule": OPEN_LOOP_RULE,
        "closed_loop_requests_per_s": round(closed_rps, 1),
        "duration_s": plan.seconds,
        "connections": sizes.connections,
        "scheduled": total,
        "sent": sent,
        "answered": answered,
        "ok": load.ok,
        "errors": load.errors,
        "dropped": total - sent,
        "elapsed_s": round(load.elapsed, 3),
        "requests_per_s": round(load.requests_per_second, 1),
        "latency_ms": latency_summary(load.latencies, unfinished=load.errors + total - sent),
        "per_kind": per_kind,
        "generator_max_send_lag_ms": round(load.max_send_lag * 1000, 2),
        "generator_cpu_s": round(load.generator_cpu_seconds, 3),
        "server_cpu_s": round(phase.server_cpu, 3),
        "sandbox_cpu_s": round(phase.other_cpu.get("sandbox", 0.0), 3),
    }


def _open_loop_extras(out: dict[str, Any], phase: Phase) -> None:
    """The figures only some runs have: PostgreSQL's CPU, the machine's load, error samples."""
    load = phase.load
    if "postgres" in phase.other_cpu:
        out["postgres_cpu_s"] = round(phase.other_cpu["postgres"], 3)
    if load.elapsed > 0 and load.machine_busy:
        out["machine_busy_cores"] = round(load.machine_busy / load.elapsed, 2)
    if load.error_samples:
        out["error_samples"] = load.error_samples


def _combine(phases: list[Phase]) -> LoadResult:
    from bench.common import combine

    if not phases:
        raise BenchError("no phase ran")
    return combine("x", phases).load
