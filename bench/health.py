"""health: /livez and /readyz against a minimal Django view, in throughput and p99 latency.

Target: p99 under 50 ms for /livez and for /readyz, at a fixed rate (open loop).

The service runs in gunicorn (2 workers x 8 threads, as the Procfile's web
process; PostgreSQL; DJANGO_DEBUG=0) with Redis as its broker, so that /readyz
does its whole job on every request: the query of the newest worker heartbeat
(a row seeded here, with HEALTH_WORKER_SEEN_SECONDS long enough for the run,
instead of a worker process competing for the 2 cores) and a fresh connection
to the broker. Requests are anonymous, as a probe's are.

The baseline is /bench/minimal/ (a plain Django view answering "ok") in the same
server and run. Closed-loop phases alternate (minimal, livez, readyz, ...) and
give requests/s and latency with every connection busy; ratios are each view's
req/s over the minimal view's. Then one open-loop phase per view at a fixed rate
gives p99 from the scheduled send time. Last, /readyz of a second server whose
broker is down (nothing listens on its port) is measured the same way: it
answers 503 without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from bench.common import Phase, combine, counting_queries, measure, measure_round, progress
from bench.load import Expect, Item, LoadGenerator, LoadResult, latency_summary
from bench.servers import HOST, Infrastructure, Server, ServerConfig, log

NAME = "health"
TARGET_P99_MS = 50.0
SERVER = ServerConfig(workers=2, worker_class="gthread", threads=8)
PROCESSES = 2
DOWN_BROKER_URL = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there
READY = b'{"status": "ok"'

VIEWS = {
    "minimal": (Item("GET", "/bench/minimal/"), Expect(200, b"ok")),
    "livez": (Item("GET", "/livez"), Expect(200, b'{"status": "ok"}')),
    "readyz": (Item("GET", "/readyz"), Expect(200, READY)),
}


@dataclass(frozen=True)
class Sizes:
    connections: int
    rounds: int
    seconds_per_round: float
    warmup_seconds: float
    open_loop_rate: float
    open_loop_seconds: float


FULL = Sizes(
    connections=16,
    rounds=2,
    seconds_per_round=5.0,
    warmup_seconds=2.0,
    open_loop_rate=100.0,
    open_loop_seconds=10.0,
)
QUICK = replace(FULL, rounds=1, seconds_per_round=2.0, warmup_seconds=1.0, open_loop_seconds=3.0)


def seed_heartbeat() -> None:
    from merchant.heartbeat import record_beat

    record_beat("bench@seeded")


def queries_per_request() -> dict[str, Any]:
    """Queries of one anonymous request to each view, in this process."""
    from django.test import Client

    client = Client(HTTP_HOST=HOST)
    found: dict[str, Any] = {}
    for name, (item, _) in VIEWS.items():
        with counting_queries() as count:
            client.get(item.path)
        found[name] = count.summary()
    return found


@dataclass
class Loads:
    """Load phases from one generator, of one view each."""

    gen: LoadGenerator
    sizes: Sizes
    pg: Any

    def closed_loop(self, name: str, seconds: float) -> LoadResult:
        item, expect = VIEWS[name]
        return self.gen.closed_loop(
            [item], connections=self.sizes.connections, expect=expect, repeat=True, duration=seconds
        )

    def _open_loop(self, item: Item, expect: Expect) -> LoadResult:
        return self.gen.open_loop(
            [item],
            rate=self.sizes.open_loop_rate,
            duration=self.sizes.open_loop_seconds,
            connections=self.sizes.connections,
            expect=expect,
            repeat=True,
        )

    def open_phase(self, name: str, target: Server, item: Item, expect: Expect) -> Phase:
        run_open = partial(self._open_loop, item, expect)
        # Failed or dropped requests count as infinitely slow answers in the p99.
        phase = measure(name, target, run_open, postgres=self.pg, allow_errors=True)
        log(f"{NAME}: {progress(phase)}, p99 {phase.load.latency_ms().get('p99')} ms")
        return phase


def _measure_views(
    server: Server, sizes: Sizes, pg: Any
) -> tuple[dict[str, list[Phase]], dict[str, Phase]]:
    """Closed-loop rounds (views alternating), then an open loop per view."""
    closed: dict[str, list[Phase]] = {name: [] for name in VIEWS}
    opened: dict[str, Phase] = {}
    with LoadGenerator(HOST, server.port, processes=PROCESSES) as gen:
        loads = Loads(gen, sizes, pg)
        log(f"{NAME}: warm-up")
        for name in VIEWS:
            loads.closed_loop(name, sizes.warmup_seconds)
        for round_ in range(sizes.rounds):
            for name in VIEWS:
                run_round = partial(loads.closed_loop, name, sizes.seconds_per_round)
                closed[name].append(
                    measure_round(
                        f"{name}[{round_}]", server, run_round, benchmark=NAME, postgres=pg
                    )
                )
        log(f"{NAME}: open loop, {sizes.open_loop_rate:.0f} req/s per view")
        for name, (item, expect) in VIEWS.items():
            opened[name] = loads.open_phase(f"{name}_open_loop", server, item, expect)
    return closed, opened


def _measure_broker_down(infra: Infrastructure, sizes: Sizes, pg: Any) -> Phase:
    """/readyz's open loop on a server whose broker is down (503 expected)."""
    down = infra.start_server(
        "service-health-broker-down", SERVER, CELERY_BROKER_URL=DOWN_BROKER_URL
    )
    degraded = Expect(503, b'{"status": "degraded"')
    with LoadGenerator(HOST, down.port, processes=PROCESSES) as gen:
        item = VIEWS["readyz"][0]
        # Warmed up as the first server was: each process's first check imports the transport.
        gen.closed_loop(
            [item],
            connections=sizes.connections,
            expect=degraded,
            repeat=True,
            duration=sizes.warmup_seconds,
        )
        phase = Loads(gen, sizes, pg).open_phase(
            "readyz_broker_down_open_loop", down, item, degraded
        )
    infra.stop_server(down)
    return phase


def run(infra: Infrastructure, quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    seed_heartbeat()
    broker = infra.prepare_broker()
    server = infra.start_server(
        "service-health", SERVER, CELERY_BROKER_URL=broker, HEALTH_WORKER_SEEN_SECONDS="86400"
    )
    pg = infra.postgres_meter()
    closed, opened = _measure_views(server, sizes, pg)
    infra.stop_server(server)
    opened["readyz_broker_down"] = _measure_broker_down(infra, sizes, pg)

    combined = {name: combine(name, phases) for name, phases in closed.items()}
    base_rps = combined["minimal"].load.requests_per_second
    p99 = {name: _p99(phase) for name, phase in opened.items()}
    meets = all((p99[name] or float("inf")) < TARGET_P99_MS for name in ("livez", "readyz"))
    return {
        "ratio": round(combined["readyz"].load.requests_per_second / base_rps, 3),
        "target": f"p99 < {TARGET_P99_MS:.0f} ms for /livez and /readyz at "
        f"{sizes.open_loop_rate:.0f} req/s (open loop); ratio reported",
        "baseline": "GET /bench/minimal/: a plain Django function view answering 'ok' behind the "
        "same middleware, same server and run, same clients",
        "meets_target": meets,
        "measured": _measured(infra, sizes, broker, combined, opened, p99),
    }


def _measured(
    infra: Infrastructure,
    sizes: Sizes,
    broker: str,
    combined: dict[str, Phase],
    opened: dict[str, Phase],
    p99: dict[str, float | None],
) -> dict[str, Any]:
    base_rps = combined["minimal"].load.requests_per_second
    return {
        "what": "ratio = /readyz req/s ÷ minimal req/s in closed loops with the same "
        "connections; p99 of each view at a fixed rate from the scheduled send time; "
        "/readyz with the broker down on a second server (503 expected)",
        "server": f"{SERVER.describe()}, DJANGO_DEBUG=0, {infra.database}, broker {broker}",
        "livez_ratio_to_minimal": round(combined["livez"].load.requests_per_second / base_rps, 3),
        "p99_ms": p99,
        "p99_ratio_to_minimal": {
            name: round(value / p99["minimal"], 2) if value and p99["minimal"] else None
            for name, value in p99.items()
        },
        "closed_loop": {
            "connections": sizes.connections,
            "rounds": sizes.rounds,
            "seconds_per_round": sizes.seconds_per_round,
            **{name: phase.summary() for name, phase in combined.items()},
        },
        "open_loop": {
            "rate_per_s": sizes.open_loop_rate,
            "duration_s": sizes.open_loop_seconds,
            **{name: phase.summary() for name, phase in opened.items()},
        },
        "queries_per_request": queries_per_request(),
    }


def _p99(phase: Phase) -> float | None:
    load = phase.load
    return latency_summary(load.latencies, unfinished=load.errors + load.dropped).get("p99")
