"""make_run_orders: 16 API clients creating orders at once against a running `make run`.

Checked from outside, as a shop developer trying the service would: `make run`
serves the service (gunicorn, 2 workers x 8 threads) and the sandbox gateway.
When the sandbox was mounted in the service's own server, each creation held
one of those 16 threads while it waited for the sandbox, whose requests then
waited for a free thread of the same server (with the per-key call lock, every
creation but one waits too): creations ended 503/504. Served by a process of
its own (the Procfile's `sandbox` line), nothing waits for the server itself.

    make run                    # in one shell (API_ORDER_CREATE_RATE= lifts the throttle)
    .venv/bin/python -m bench.make_run_orders --token <API token>
    make run SANDBOX_URL=       # the old layout: the sandbox in the service's server

Prints one JSON object: the answers by HTTP status, latency percentiles, and a
baseline (`GET /livez`, no I/O) with the same clients in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1] * 1000, 1)}


def phase(clients: int, count: int, call: Any) -> dict[str, Any]:
    """`count` calls by `clients` threads; (status, seconds) of each, summarised."""

    def timed(number: int) -> tuple[int | str, float]:
        started = time.monotonic()
        try:
            status: int | str = call(number).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        return status, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(timed, range(count)))
    return {
        "answers": dict(Counter(str(status) for status, _ in results)),
        "latency_ms": percentiles([seconds for _, seconds in results]),
        "wall_seconds": round(time.monotonic() - started, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.make_run_orders", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service (make run)")
    parser.add_argument("--token", required=True, help="an API token (make run prints one)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--orders", type=int, default=400)
    args = parser.parse_args()
    headers = {"Authorization": f"Token {args.token}"}

    def create(number: int) -> requests.Response:
        body = {"reference": f"bench-{uuid.uuid4().hex[:12]}", "amount": "1.25", "currency": "USD"}
        return requests.post(f"{args.url}/api/orders/", json=body, headers=headers, timeout=120)

    def livez(number: int) -> requests.Response:
        return requests.get(f"{args.url}/livez", timeout=30)

    result = {
        "clients": args.clients,
        "baseline_livez": phase(args.clients, args.orders, livez),
        "orders": phase(args.clients, args.orders, create),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
