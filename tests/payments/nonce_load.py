"""One process of the nonce load test (tests/payments/test_nonce_processes.py).

    python -m tests.payments.nonce_load --process 0 --threads 50 --db-connections 16

Run from the project folder with DJANGO_SETTINGS_MODULE=tests.settings and the
gateway settings (GATEWAY_API_URL, ...) in the environment. Each thread builds
its own client with `payments.gateway_factory.gateway_client()` and waits at a
barrier; the process prints `READY` once every thread is waiting, and a line
on stdin releases them all at once. Each thread creates one order. The last
line printed is `SUMMARY <json>`: successes, failures by exception class and
token, the transactions, every nonce handed out, and how many calls the client
re-signed after a stale nonce.

The nonce source and the call lock are the real ones (`payments.nonces`,
through the factory); the source is only wrapped to record the values it hands
out, and the lock to bound the process's database connections as a server of
the service bounds them (at most --db-connections threads hold one, each only
while it holds the lock: from its nonce to the gateway's reply).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

READY = "READY"
SUMMARY = "SUMMARY "


class _StaleNonceCounter(logging.Handler):
    """Counts the client's "stale nonce, re-signing" log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self._count_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "stale nonce" in record.getMessage():
            with self._count_lock:
                self.count += 1


def run(process: int, threads: int, db_connections: int) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()

    from django.conf import settings
    from django.db import connection

    from payments import gateway_factory
    from payments.gateway.errors import GatewayRejected

    retries = _StaleNonceCounter()
    client_logger = logging.getLogger("payments.gateway.client")
    client_logger.addHandler(retries)
    client_logger.setLevel(logging.INFO)
    client_logger.propagate = False  # counted here, not printed

    lock = threading.Lock()
    handed_out: list[int] = []
    per_thread: Counter[int] = Counter()
    real_nonce_next = gateway_factory.nonce_next
    real_call_lock = gateway_factory.nonce_call_lock
    # The harness's threads (50 per process) stand for 50 concurrent requests, but a real
    # deployment bounds its database connections by its thread count (gunicorn: workers x
    # threads, one connection each). So a thread holds a connection only while it holds the
    # key's call lock (its nonce is drawn under it) and closes it right after (Django's
    # connections are per thread: otherwise each would stay open, 100 for the whole load),
    # and at most `db_connections` threads do at once (otherwise the release, or a burst of
    # retries, opens one per thread again). Either would exhaust PostgreSQL's
    # max_connections=100.
    drawing = threading.BoundedSemaphore(db_connections)

    def recording_nonce_next(*, api_key: str) -> int:
        value = real_nonce_next(api_key=api_key)
        with lock:
            handed_out.append(value)
            per_thread[threading.get_ident()] += 1
        return value

    @contextmanager
    def bounded_call_lock(*, api_key: str, timeout: float) -> Iterator[None]:
        with drawing:
            try:
                with real_call_lock(api_key=api_key, timeout=timeout):
                    yield
            finally:
                connection.close()  # this thread's own connection

    gateway_factory.nonce_next = recording_nonce_next
    gateway_factory.nonce_call_lock = bounded_call_lock

    barrier = threading.Barrier(threads + 1)
    transactions: list[str] = []
    failures: Counter[str] = Counter()
    messages: list[str] = []
    base = settings.PUBLIC_BASE_URL

    def work(index: int) -> None:
        client = None
        try:
            client = gateway_factory.gateway_client()
            barrier.wait(timeout=60)
            created = client.order_create(
                currency="USD",
                amount_int=1_000_000 + process * 1_000 + index,
                return_success=f"{base}/checkout/done?p={process}&t={index}",
                return_failure=f"{base}/checkout/cancelled?p={process}&t={index}",
                data=f"p{process}-t{index}",
            )
            with lock:
                transactions.append(str(created.transaction))
        except Exception as exc:
            kind = type(exc).__name__
            if isinstance(exc, GatewayRejected):
                kind += f":{exc.token}"
            with lock:
                failures[kind] += 1
                messages.append(f"{kind}: {exc}"[:500])
        finally:
            if client is not None:
                client.close()
            connection.close()  # this thread's own database connection

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 60
    while barrier.n_waiting < threads and time.monotonic() < deadline:
        time.sleep(0.01)
    print(READY, flush=True)
    sys.stdin.readline()  # the test releases every process at once
    started = time.monotonic()
    barrier.wait(timeout=60)
    for worker in workers:
        worker.join(timeout=120)
    return {
        "process": process,
        "pid": os.getpid(),
        "threads": threads,
        "successes": len(transactions),
        "failures": dict(failures),
        "failure_messages": messages[:10],
        "transactions": transactions,
        "nonces": handed_out,
        "stale_nonce_retries": retries.count,
        # Most nonces one thread's call needed (1 = accepted at the first try).
        "max_attempts": max(per_thread.values(), default=0),
        "seconds": round(time.monotonic() - started, 3),
        "hung_threads": sum(worker.is_alive() for worker in workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--process", type=int, required=True)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--db-connections", type=int, default=16)
    args = parser.parse_args()
    summary = run(args.process, args.threads, args.db_connections)
    print(SUMMARY + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
