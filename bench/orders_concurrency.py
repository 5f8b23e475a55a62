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
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

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


def run(infra: Infrastructure, quick: bool) -> dict[str, Any]:
    from sandbox.accounts import ensure_configured_account

    sizes = QUICK if quick else FULL
    token = _api_token()
    ensure_configured_account()  # the sandbox account of the service's key
    sandbox = infra.start_server("sandbox", SANDBOX, access_log=True, SANDBOX_ENABLED="1")
    gateway_url, payment_host = f"{sandbox.url}/sandbox/api/", f"{sandbox.url}/sandbox"
    servers = {
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
    headers = _headers(token)
    made = 0

    def new_orders(server: Server, n: int) -> list[Item]:
        nonlocal made
        first, made = made, made + n
        return [
            Item("POST", "/api/orders/", _order_body(server, i), headers)
            for i in range(first, made)
        ]

    phases: dict[str, list[Phase]] = {"minimal_drf": [], **{name: [] for name in VARIANTS}}
    refused: dict[str, dict[str, int]] = {name: {} for name in VARIANTS}
    with ExitStack() as stack:
        generators = {
            name: stack.enter_context(LoadGenerator(HOST, s.port, processes=2))
            for name, s in servers.items()
        }
        locked = generators["locked"]
        minimal = [Item("POST", "/bench/minimal-drf/", _order_body(servers["locked"], 0), headers)]

        def send_minimal(count: int) -> LoadResult:
            return locked.closed_loop(
                minimal, connections=CLIENTS, expect=Expect(200), repeat=True, count=count
            )

        def send_orders(name: str, n: int) -> LoadResult:
            items = new_orders(servers[name], n)
            return generators[name].closed_loop(items, connections=CLIENTS, expect=Expect(201))

        log(f"{NAME}: warm-up")
        require_success("warm-up", send_minimal(sizes.warmup))
        for name in VARIANTS:
            require_success("warm-up", send_orders(name, sizes.warmup))
        for round_ in range(sizes.rounds):
            phases["minimal_drf"].append(
                measure_round(
                    f"minimal_drf[{round_}]",
                    servers["locked"],
                    partial(send_minimal, sizes.minimal_per_round),
                    benchmark=NAME,
                )
            )
            for name in VARIANTS:
                wait_for_idle()
                before = _gateway_calls(sandbox)
                phase = measure(
                    f"{name}[{round_}]",
                    servers[name],
                    partial(send_orders, name, sizes.orders_per_round),
                    others={"sandbox": sandbox},
                )
                wait_for_idle(1.0)  # the sandbox writes its access log after answering
                for status, n in _calls_between(before, _gateway_calls(sandbox)).items():
                    refused[name][status] = refused[name].get(status, 0) + n
                log(f"{NAME}: {name}[{round_}]: p99 {phase.load.latency_ms().get('p99')} ms")
                phases[name].append(phase)
    return _result(sizes, infra, phases, refused)


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
