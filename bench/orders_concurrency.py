"""orders_concurrency: 16 concurrent clients creating orders with one API key: stale nonces and p99.

Target: 0 stale-nonce retries per order. Two servers of the service run the
Procfile's web process (gthread, 2 workers x 8 threads, DJANGO_DEBUG=0,
PostgreSQL) with one API key against one sandbox gateway (a server of its own,
its access log read): `locked` as configured by default (the key's call lock,
payments.nonces.nonce_call_lock, held from the nonce to the gateway's reply),
`unlocked` with GATEWAY_CALL_LOCK_SECONDS=0 (what the service did before: calls
race to the gateway, a later nonce arrives first and the earlier call is refused
as stale, re-signed and sent again after a backoff). The baseline is
/bench/minimal-drf/ on the locked server, same run, same clients.

Retries are counted at the gateway: merchant/order/create calls the sandbox
refused (HTTP 403, `login_error_invalid_nonce`: nothing else is refused here),
per order created. `ratio` is the locked server's order-creation p99 over the
minimal DRF view's p99; both servers' p99 are reported. Phases alternate
(minimal, unlocked, locked; again) so that drift hits all of them.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from django.urls import reverse

from bench.common import Phase, combine, measure, measure_round, require_success, wait_for_idle
from bench.load import Expect, Item, LoadGenerator, LoadResult
from bench.orders_cpu import (
    SANDBOX,
    SERVICE,
    _api_token,
    _calls_between,
    _gateway_calls,
    _headers,
    _order_body,
)
from bench.servers import HOST, Infrastructure, Server, log

NAME = "orders_concurrency"
CLIENTS = 16
VARIANTS = ("unlocked", "locked")


@dataclass(frozen=True)
class Sizes:
    rounds: int
    orders_per_round: int
    minimal_per_round: int
    warmup: int


FULL = Sizes(rounds=2, orders_per_round=400, minimal_per_round=800, warmup=80)
QUICK = replace(FULL, rounds=1, orders_per_round=120, minimal_per_round=300, warmup=32)


def _start_services(infra: Infrastructure, sandbox: Server) -> dict[str, Server]:
    """The service twice: with the key's call lock (the default) and without it."""
    gateway_url, payment_host = f"{sandbox.url}/sandbox/api/", f"{sandbox.url}/sandbox"
    return {
        "unlocked": infra.start_server(
            "service-unlocked",
            SERVICE,
            GATEWAY_API_URL=gateway_url,
            GATEWAY_PAYMENT_HOST=payment_host,
            GATEWAY_CALL_LOCK_SECONDS="0",  # the service before the lock
        ),
        "locked": infra.start_server(
            "service-locked",
            SERVICE,
            GATEWAY_API_URL=gateway_url,
            GATEWAY_PAYMENT_HOST=payment_host,
        ),
    }


@dataclass
class VariantRounds:
    """Rounds of the minimal DRF view (locked server), then each variant's order creation."""

    servers: dict[str, Server]
    generators: dict[str, LoadGenerator]
    sandbox: Server
    sizes: Sizes
    headers: tuple[tuple[str, str], ...]
    made: int = 0
    phases: dict[str, list[Phase]] = field(
        default_factory=lambda: {"minimal_drf": [], **{name: [] for name in VARIANTS}}
    )
    # The sandbox's answers to merchant/order/create, by variant and status.
    refused: dict[str, dict[str, int]] = field(
        default_factory=lambda: {name: {} for name in VARIANTS}
    )

    def send_minimal(self, count: int) -> LoadResult:
        body = _order_body(self.servers["locked"], 0)
        minimal = [Item("POST", "/bench/minimal-drf/", body, self.headers)]
        return self.generators["locked"].closed_loop(
            minimal, connections=CLIENTS, expect=Expect(200), repeat=True, count=count
        )

    def send_orders(self, name: str, n: int) -> LoadResult:
        first, self.made = self.made, self.made + n
        server, path = self.servers[name], reverse("api-orders")
        items = [
            Item("POST", path, _order_body(server, i), self.headers)
            for i in range(first, self.made)
        ]
        return self.generators[name].closed_loop(items, connections=CLIENTS, expect=Expect(201))

    def warm_up(self) -> None:
        log(f"{NAME}: warm-up")
        require_success("warm-up", self.send_minimal(self.sizes.warmup))
        for name in VARIANTS:
            require_success("warm-up", self.send_orders(name, self.sizes.warmup))

    def run_round(self, index: int) -> None:
        self.phases["minimal_drf"].append(
            measure_round(
                f"minimal_drf[{index}]",
                self.servers["locked"],
                partial(self.send_minimal, self.sizes.minimal_per_round),
                benchmark=NAME,
            )
        )
        for name in VARIANTS:
            self._variant_phase(name, index)

    def _variant_phase(self, name: str, index: int) -> None:
        wait_for_idle()
        before = _gateway_calls(self.sandbox)
        phase = measure(
            f"{name}[{index}]",
            self.servers[name],
            partial(self.send_orders, name, self.sizes.orders_per_round),
            others={"sandbox": self.sandbox},
        )
        wait_for_idle(1.0)  # the sandbox writes its access log after answering
        refused = self.refused[name]
        for status, n in _calls_between(before, _gateway_calls(self.sandbox)).items():
            refused[status] = refused.get(status, 0) + n
        log(f"{NAME}: {name}[{index}]: p99 {phase.load.latency_ms().get('p99')} ms")
        self.phases[name].append(phase)


def run(infra: Infrastructure, quick: bool) -> dict[str, Any]:
    from sandbox.accounts import ensure_configured_account

    sizes = QUICK if quick else FULL
    token = _api_token()
    ensure_configured_account()  # the sandbox account of the service's key
    sandbox = infra.start_server("sandbox", SANDBOX, access_log=True, SANDBOX_ENABLED="1")
    servers = _start_services(infra, sandbox)
    with ExitStack() as stack:
        generators = {
            name: stack.enter_context(LoadGenerator(HOST, s.port, processes=2))
            for name, s in servers.items()
        }
        rounds = VariantRounds(servers, generators, sandbox, sizes, _headers(token))
        rounds.warm_up()
        for index in range(sizes.rounds):
            rounds.run_round(index)
    return _result(sizes, infra, rounds.phases, rounds.refused)


def _variant(phase: Phase, calls: dict[str, int]) -> dict[str, Any]:
    stale = sum(n for status, n in calls.items() if status != "200")
    return {
        **phase.load.summary(),
        "gateway_calls": calls,
        "stale_nonce_retries": stale,
        "stale_nonce_retries_per_order": round(stale / phase.load.ok, 4) if phase.load.ok else None,
    }


def _result(
    sizes: Sizes,
    infra: Infrastructure,
    phases: dict[str, list[Phase]],
    refused: dict[str, dict[str, int]],
) -> dict[str, Any]:
    base = combine("minimal_drf", phases["minimal_drf"])
    variants = {name: _variant(combine(name, phases[name]), refused[name]) for name in VARIANTS}
    base_p99 = base.load.latency_ms()["p99"]
    locked_p99 = variants["locked"]["latency_ms"]["p99"]
    ratio = locked_p99 / base_p99 if locked_p99 and base_p99 else float("nan")
    return {
        "ratio": round(ratio, 3),
        "target": "0 stale-nonce retries per order (locked); ratio = p99 order create / p99 "
        "minimal DRF view",
        "baseline": "POST /bench/minimal-drf/ on the locked server: a DRF APIView with the "
        'default authentication and permission classes answering {"ok": true}; same run, '
        f"same {CLIENTS} clients",
        "meets_target": variants["locked"]["stale_nonce_retries"] == 0,
        "measured": {
            "server": f"{SERVICE.describe()}, DJANGO_DEBUG=0, {infra.database}",
            "sandbox": f"separate server ({SANDBOX.describe()}) on loopback",
            "clients": CLIENTS,
            "rounds": sizes.rounds,
            "minimal_drf": base.load.summary(),
            "locked": variants["locked"],
            "unlocked": variants["unlocked"],
        },
    }
