"""Beat on every node: only the lease holder sends (merchant.beat).

The store's rules on the test database, then real `celery beat` processes: two
beats on one database and broker send each entry once per period; a holder that
hangs (SIGSTOP) is replaced and, resumed, sends nothing; a holder that is killed
(SIGKILL) is replaced and scheduling goes on.
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from merchant.beat import BeatLeaseStore
from payments.models import BeatLease
from tests.conftest import BASE_DIR, service_env

LEASE_SECONDS = 3
PERIOD = 1  # seconds between runs of the one entry the beats schedule here
ENTRY = "payments-sweep-expire"
SENT = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Scheduler: Sending due task " + ENTRY + r" "
)
WAIT = 60.0


# --- the store ------------------------------------------------------------------


def store(holder: str) -> BeatLeaseStore:
    return BeatLeaseStore(holder=holder, seconds=LEASE_SECONDS)


def expire_lease() -> None:
    BeatLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db
def test_one_holder_at_a_time_until_its_lease_expires() -> None:
    a, b = store("a"), store("b")
    assert a.take() == {}
    assert b.take() is None
    assert a.take() == {}  # renewing
    expire_lease()
    assert b.take() == {}
    assert a.take() is None


@pytest.mark.django_db
def test_the_holder_records_only_while_its_lease_is_unexpired() -> None:
    a, b = store("a"), store("b")
    a.take()
    assert a.record({ENTRY: "2026-01-02T03:04:05+00:00"})
    expire_lease()
    assert not a.record({ENTRY: "2026-01-02T03:04:06+00:00"})  # expired: no send
    assert b.take() == {ENTRY: "2026-01-02T03:04:05+00:00"}  # the last run it sent
    assert not a.record({ENTRY: "2026-01-02T03:04:07+00:00"})


@pytest.mark.django_db
def test_a_released_lease_is_taken_at_once() -> None:
    a, b = store("a"), store("b")
    a.take()
    a.release()
    assert b.take() == {}


# --- real beat processes --------------------------------------------------------


class Beat:
    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.log = folder / f"beat-{name}.log"
        env = service_env(
            BEAT_LEASE_SECONDS=str(LEASE_SECONDS),
            # One entry every second; the others are off or far apart.
            PAYMENTS_SWEEP_SECONDS=f"expire={PERIOD},apply_pending=0,stuck=0,ledger=0",
        )
        argv = [sys.executable, "-m", "celery", "--app", "merchant", "beat", "--loglevel", "INFO"]
        argv += ["--schedule", str(folder / f"schedule-{name}")]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def sends(self) -> list[datetime]:
        found = (SENT.match(line) for line in self.text().splitlines())
        return [datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f") for m in found if m]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for(condition: Callable[[], bool], what: str, beats: list[Beat]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        assert all(b.process.poll() is None for b in beats), f"a beat died: {what}"
        time.sleep(0.1)
    logs = "\n".join(f"--- {b.log}\n{b.text()[-3000:]}" for b in beats)
    raise AssertionError(f"timed out waiting: {what}\n{logs}")


@pytest.fixture
def beats(transactional_db: None, tmp_path: Path) -> Iterator[Callable[[str], Beat]]:
    started: list[Beat] = []

    def start(name: str) -> Beat:
        started.append(Beat(name, tmp_path))
        return started[-1]

    yield start
    for beat in started:
        beat.stop()
    from merchant.celery import app

    app.control.purge()  # the sweeps they sent are for nobody


def assert_once_per_period(*beats: Beat) -> None:
    """Every send of the entry, by any beat, at least most of a period after the one before."""
    sends = sorted(t for b in beats for t in b.sends())
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(sends)]
    assert min(gaps) >= PERIOD / 2, f"sent twice in one period: {sends}"


def test_two_beats_send_once_per_period_and_take_over(beats: Callable[[str], Beat]) -> None:
    a = beats("a")
    wait_for(lambda: "holding the lease" in a.text(), "a holds the lease", [a])
    b = beats("b")
    wait_for(lambda: len(a.sends()) >= 4, "a sends", [a, b])
    assert not b.sends() and "holding the lease" not in b.text()

    # a hangs: b takes over once a's lease expires, and a, resumed, sends nothing more.
    a.process.send_signal(signal.SIGSTOP)
    sent_by_a = len(a.sends())
    wait_for(lambda: len(b.sends()) >= 3, "b takes over from a hung beat", [a, b])
    a.process.send_signal(signal.SIGCONT)
    wait_for(lambda: len(b.sends()) >= 3 + 3, "b goes on", [a, b])
    assert len(a.sends()) == sent_by_a, "a resumed beat sent without the lease"

    # b is killed: a takes the lease again and scheduling goes on.
    b.process.kill()
    b.process.wait()
    wait_for(lambda: len(a.sends()) >= sent_by_a + 3, "a takes over from a killed beat", [a])
    assert_once_per_period(a, b)
