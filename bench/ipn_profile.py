"""Where an IPN request's time goes: cProfile of signed IPNs posted with the Django test client.

    .venv/bin/python -m bench.ipn_profile [N]

For each way of applying (request: stored and applied in the request; worker:
stored only, a debounced wake published to Redis; worker-every: a wake published
per IPN, no debounce), N fresh `paid` IPNs for seeded orders are posted in this
process on the bench database (BENCH_DATABASE_URL) and broker (BENCH_BROKER_URL,
emptied first; no worker runs: only the request's side is measured). Prints the
mean wall time per IPN and the top functions by own time and by cumulative time.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time
from typing import Any

from bench.servers import DEFAULT_BROKER_URL, Infrastructure, prepare_broker

MODES = ("request", "worker", "worker-every")
TOP = 15


def _post_all(client: Any, bodies: list[tuple[bytes, dict[str, str]]]) -> None:
    from payments.testing import IPN_PATH

    for body, headers in bodies:
        headers = dict(headers)
        content_type = headers.pop("Content-Type")
        response = client.post(IPN_PATH, body, content_type=content_type, headers=headers)
        if response.content != b"[OK]":
            raise RuntimeError(f"HTTP {response.status_code} {response.content[:200]!r}")


def profile(mode: str, n: int) -> str:
    """Post n fresh IPNs in `mode`; the report's text."""
    from django.test import Client, override_settings

    from bench.ipn_throughput import paid_ipn, seed_orders
    from payments.services import ipn_inbox

    bodies = [paid_ipn(*order) for order in seed_orders(n + 20, f"profile-{mode}")]
    client = Client(HTTP_HOST="127.0.0.1")
    window = 0.0 if mode == "worker-every" else ipn_inbox.WAKE_WINDOW_SECONDS
    apply = "request" if mode == "request" else "worker"
    with override_settings(PAYMENTS_IPN_APPLY=apply):
        ipn_inbox.WAKE_WINDOW_SECONDS = window
        _post_all(client, bodies[:20])  # warm: connections, caches, imports
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.runcall(_post_all, client, bodies[20:])
        took = time.perf_counter() - started
        statements = _statements(client, bodies[-1])
    heading = (
        f"== {mode}: {n} IPNs, {took / n * 1000:.2f} ms per IPN (profiled)\n"
        f"statements of one IPN: {statements}\n"
    )
    # The service's own functions and the publish (Django's request stack left out).
    return _report(profiler, heading, r"payments/|merchant/|kombu/|celery/")


def _report(profiler: cProfile.Profile, heading: str, own: str) -> str:
    """`heading`, the functions with the most own time, and the heaviest calls of files
    matching `own`."""
    out = io.StringIO()
    out.write(heading)
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(TOP)
    stats.sort_stats("cumulative").print_stats(own, TOP)
    return out.getvalue()


def profile_drain() -> str:
    """Apply what the worker modes stored, as the woken worker does; the report's text."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from payments.services.ipn_inbox import notifications_drain

    profiler = cProfile.Profile()
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as captured:
        counts = profiler.runcall(notifications_drain, until=0)
    took = time.perf_counter() - started
    n = counts["examined"]
    heading = (
        f"== drain: {n} notifications applied, {took / n * 1000:.2f} ms each, "
        f"{len(captured.captured_queries) / n:.1f} statements each\n"
    )
    return _report(profiler, heading, r"payments/|merchant/")


def _statements(client: Any, ipn: tuple[bytes, dict[str, str]]) -> list[str]:
    """The SQL of one more IPN (a duplicate of the last: the first words of each statement)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.ipn_throughput import paid_ipn, seed_orders

    fresh = paid_ipn(*seed_orders(1, "profile-statements")[0])
    with CaptureQueriesContext(connection) as captured:
        _post_all(client, [fresh])
    return [" ".join(q["sql"].split()[:4]) for q in captured.captured_queries]


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 500
    broker = os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)
    prepare_broker(broker)
    os.environ["CELERY_BROKER_URL"] = broker  # kept by Infrastructure's Django setup
    with Infrastructure():
        for mode in MODES:
            print(profile(mode, n), flush=True)
        print(profile_drain(), flush=True)
    prepare_broker(broker)  # the wakes nobody consumed
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
