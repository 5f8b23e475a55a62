"""Nonce under concurrency: 2 processes x 50 concurrent order creations against the sandbox.

Two real processes of the service (tests/payments/nonce_load.py) share the
test database, hence the nonce counter (payments.nonces), and one API key.
In each, 50 threads, each with its own client from gateway_client(), are
released together (a barrier in each process, and one go-signal for both)
and create one order each at the sandbox gateway served by the live server
of this process, over real HTTP. Requests overtake one another on the way,
so the gateway refuses some nonces as stale; the client re-signs those, and
no nonce failure may reach the caller.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from payments.models import GatewayNonce
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxOrder
from tests.conftest import BASE_DIR, service_env
from tests.payments.nonce_load import READY, SUMMARY

PROCESSES = 2
THREADS = 50
TIME_LIMIT = 60.0


class LoadProcess:
    """One `python -m tests.payments.nonce_load` process; its stdout read by a thread."""

    def __init__(self, index: int, env: dict[str, str], log: Path) -> None:
        self.index = index
        self.log = log
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.payments.nonce_load",
                "--process",
                str(index),
                "--threads",
                str(THREADS),
            ],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
            text=True,
        )
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(
                    f"process {self.index} gave no {prefix!r} line; its stderr:\n{self.stderr()}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :]

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.mark.django_db(transaction=True)
def test_two_processes_of_fifty_concurrent_order_creations_never_see_a_nonce_failure(
    live_server: Any, settings: Any, tmp_path: Path
) -> None:
    url: str = live_server.url
    settings.PUBLIC_BASE_URL = url
    settings.GATEWAY_API_URL = f"{url}/sandbox/api/"
    settings.GATEWAY_PAYMENT_HOST = f"{url}/sandbox"
    account, _ = ensure_configured_account()
    env = service_env(
        PUBLIC_BASE_URL=settings.PUBLIC_BASE_URL,
        GATEWAY_API_URL=settings.GATEWAY_API_URL,
        GATEWAY_PAYMENT_HOST=settings.GATEWAY_PAYMENT_HOST,
        LOG_LEVEL="WARNING",
    )

    started = time.monotonic()
    processes = [LoadProcess(n, env, tmp_path / f"load-{n}.log") for n in range(PROCESSES)]
    try:
        for process in processes:
            process.wait_for(READY, timeout=TIME_LIMIT)
        released = time.monotonic()
        for process in processes:
            process.go()
        summaries = [json.loads(p.wait_for(SUMMARY, timeout=TIME_LIMIT)) for p in processes]
        finished = time.monotonic()
        exit_codes = [p.process.wait(timeout=10) for p in processes]
    finally:
        for process in processes:
            process.stop()

    successes = sum(s["successes"] for s in summaries)
    failures: dict[str, int] = {}
    for summary in summaries:
        for kind, count in summary["failures"].items():
            failures[kind] = failures.get(kind, 0) + count
    nonces = [nonce for s in summaries for nonce in s["nonces"]]
    retries = sum(s["stale_nonce_retries"] for s in summaries)
    most_attempts = max(s["max_attempts"] for s in summaries)
    per_process = ", ".join(str(s["seconds"]) for s in summaries)
    print(
        f"\n{PROCESSES} processes x {THREADS} order creations: {successes} created, "
        f"failures {failures or 'none'}, {len(nonces)} nonces handed out, "
        f"{retries} re-signed after a stale nonce (at most {most_attempts} attempts for one "
        f"call); {finished - released:.2f} s from release ({per_process} s per process), "
        f"{finished - started:.2f} s with process start-up"
    )

    assert exit_codes == [0] * PROCESSES, [p.stderr() for p in processes]
    assert [s["hung_threads"] for s in summaries] == [0] * PROCESSES
    assert failures == {}, [m for s in summaries for m in s["failure_messages"]]
    assert successes == PROCESSES * THREADS
    # Every order reached the sandbox once: 100 distinct transactions, one per thread.
    reported = {t for s in summaries for t in s["transactions"]}
    assert len(reported) == PROCESSES * THREADS
    stored = SandboxOrder.objects.filter(account=account)
    assert {str(t) for t in stored.values_list("transaction", flat=True)} == reported
    assert sorted(stored.values_list("data", flat=True)) == sorted(
        f"p{p}-t{t}" for p in range(PROCESSES) for t in range(THREADS)
    )
    # One nonce per attempt (first tries and re-signed ones), never the same one twice.
    assert len(nonces) == PROCESSES * THREADS + retries
    assert len(set(nonces)) == len(nonces)
    # The largest nonce handed out was sent last in the key's order and accepted.
    account.refresh_from_db()
    assert account.last_nonce == max(nonces)
    counter = GatewayNonce.objects.get(api_key=settings.GATEWAY_API_KEY).last_value
    assert counter >= account.last_nonce
    assert counter == max(nonces)  # nobody else handed out nonces for the key meanwhile
    assert finished - started < TIME_LIMIT
