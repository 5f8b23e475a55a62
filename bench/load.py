"""A load generator in pure Python: closed loop (throughput) and open loop (latency at a rate).

Requests go over keep-alive `http.client` connections, one per thread, from
a few generator processes (spawned, so they do not share this process's GIL
or Django state). Each generator process reports its own CPU time: on a
2-core machine the generator competes with the server, and the reader should
see how much.

- closed loop: N connections, each sends its next request as soon as the
  previous answer is read, for a number of requests or seconds.
- open loop: requests are scheduled at a fixed rate from a common start time;
  latency is measured from the *scheduled* send time, so a slow answer that
  delays the next send counts against the server (no coordinated omission).

Everything is bounded: a count, a duration, and socket timeouts.
"""

from __future__ import annotations

import http.client
import math
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

SOCKET_TIMEOUT = 30.0
START_MARGIN = 0.5  # seconds between handing out jobs and their common start
# An open loop stops sending this long after its last scheduled request (an overloaded
# server would otherwise keep it running): requests not sent by then count as dropped.
OPEN_LOOP_GRACE = 10.0
MAX_ERROR_SAMPLES = 5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A request on a reused keep-alive connection that the server had closed never
# reached the application: it is sent again once on a new connection.
RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Item:
    """One HTTP request, ready to send (headers without Host and Content-Length).

    `kind` groups requests in a mixed phase (LoadResult.by_kind: latency and
    errors per kind); `expect`, when given, replaces the phase's expectation
    for this request (a mixed phase expects 201 of one kind and 403 of another).
    """

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    kind: str = ""
    expect: Expect | None = None


@dataclass(frozen=True)
class Expect:
    """What a successful answer looks like."""

    status: int = 200
    body_prefix: bytes = b""


@dataclass(frozen=True)
class Job:
    """The work of one generator process."""

    host: str
    port: int
    items: Sequence[Item]
    repeat: bool  # cycle through `items` instead of sending each once
    threads: int
    start_at: float  # time.time() of the common start
    expect: Expect
    duration: float | None = None  # closed loop: stop sending after this many seconds
    count: int | None = None  # at most this many requests (None: every item once, or no limit)
    rate: float | None = None  # open loop: this process's requests per second
    first_slot: float = 0.0  # open loop: seconds after start of this process's first request
    give_up_after: float | None = None  # open loop: seconds after start to stop sending
    record_outcomes: bool = False  # keep (index, HTTP status, as expected) of every request
    # Open loop: each item's due time, seconds after start (instead of first_slot + index / rate).
    due: Sequence[float] | None = None


@dataclass
class JobResult:
    latencies: list[float] = field(default_factory=list)  # seconds, of successful requests
    sent: int = 0  # items taken (sent or failed): with repeat=False, items[:sent] were used
    dropped: int = 0  # open loop: scheduled requests never sent (the phase gave up)
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    reconnects: int = 0
    started: float = 0.0  # time.time()
    finished: float = 0.0
    cpu_seconds: float = 0.0  # user + system of the generator process during the job
    max_send_lag: float = 0.0  # open loop: how late the generator itself sent (seconds)
    by_kind: dict[str, KindResult] = field(default_factory=dict)  # items with a `kind`
    # With Job.record_outcomes: (index into Job.items, HTTP status or 0 when no answer,
    # whether the answer was the expected one), in the order the answers came.
    outcomes: list[tuple[int, int, bool]] = field(default_factory=list)


@dataclass
class KindResult:
    """The requests of one kind (Item.kind) in a phase."""

    latencies: list[float] = field(default_factory=list)  # seconds, of successful requests
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status (0: no answer) -> count

    def add(self, other: KindResult) -> None:
        self.latencies += other.latencies
        self.ok += other.ok
        self.errors += other.errors
        self.error_samples = (self.error_samples + other.error_samples)[:MAX_ERROR_SAMPLES]
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n

    def summary(self, elapsed: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.ok + self.errors,
            "ok": self.ok,
            "errors": self.errors,
            "requests_per_s": round(self.ok / elapsed, 1) if elapsed > 0 else None,
            "latency_ms": latency_summary(self.latencies),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }
        if self.error_samples:
            out["error_samples"] = self.error_samples
        return out


@dataclass
class LoadResult:
    """Aggregated over every generator process of one phase."""

    requests: int
    ok: int
    errors: int
    elapsed: float
    latencies: list[float]
    generator_cpu_seconds: float
    error_samples: list[str]
    reconnects: int
    max_send_lag: float
    sent_per_job: list[int]
    dropped: int = 0  # open loop: scheduled requests never sent (counted as infinitely slow)
    machine_busy: float = 0.0  # CPU seconds the whole machine was busy from start to end
    by_kind: dict[str, KindResult] = field(default_factory=dict)  # items with a `kind`
    outcomes_per_job: list[list[tuple[int, int, bool]]] = field(default_factory=list)

    @property
    def requests_per_second(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        return latency_summary(self.latencies, unfinished=self.dropped)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed, 3),
            "requests_per_s": round(self.requests_per_second, 1),
            "latency_ms": self.latency_ms(),
            "generator_cpu_s": round(self.generator_cpu_seconds, 3),
        }
        if self.elapsed > 0 and self.machine_busy:
            # Of the machine's cores, how many were busy on average (server, database, generator).
            out["machine_busy_cores"] = round(self.machine_busy / self.elapsed, 2)
        if self.reconnects:
            out["reconnects"] = self.reconnects
        if self.dropped:
            out["dropped"] = self.dropped
        if self.error_samples:
            out["error_samples"] = self.error_samples
        return out


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies: Sequence[float], unfinished: int = 0) -> dict[str, float | None]:
    """Percentiles in ms; `unfinished` requests count as infinitely slow (shown as null)."""
    ordered = sorted(latencies) + [math.inf] * unfinished
    if not ordered:
        return {}

    def ms(seconds: float) -> float | None:
        return round(seconds * 1000, 2) if math.isfinite(seconds) else None

    return {
        "p50": ms(percentile(ordered, 50)),
        "p90": ms(percentile(ordered, 90)),
        "p99": ms(percentile(ordered, 99)),
        "max": ms(ordered[-1]),
        "mean": ms(sum(ordered) / len(ordered)),
    }


# --- inside a generator process ---------------------------------------------------


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn: http.client.HTTPConnection | None = None
        self.reused = False
        self.reconnects = 0

    def send(self, item: Item) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=SOCKET_TIMEOUT)
                self.reused = False
            try:
                self.conn.request(
                    item.method, item.path, body=item.body, headers=dict(item.headers)
                )
                response = self.conn.getresponse()
                body = response.read()
            except RETRYABLE:
                self.close()
                if attempt == 2 or not self.reused:
                    raise
                self.reconnects += 1
                continue
            except Exception:
                self.close()
                raise
            if response.will_close:
                self.close()
            else:
                self.reused = True
            return response.status, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


class _Items:
    """Hands out items to the threads of one process: each exactly once, or cycled."""

    def __init__(self, items: Sequence[Item], repeat: bool, count: int | None) -> None:
        self.items = items
        self.repeat = repeat
        limit = count if count is not None else (None if repeat else len(items))
        if not repeat and limit is not None:
            limit = min(limit, len(items))
        self.limit = limit
        self.taken = 0
        self.lock = threading.Lock()

    def take(self, stop_at: float | None = None) -> tuple[int, Item] | None:
        with self.lock:
            if stop_at is not None and time.perf_counter() > stop_at:
                return None
            index = self.taken
            if self.limit is not None and index >= self.limit:
                return None
            if not self.repeat and index >= len(self.items):
                return None
            self.taken += 1
        return index, self.items[index % len(self.items)]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tally(into: JobResult | KindResult, latency: float | None, error: str | None) -> None:
    """One request counted: ok with its latency, or an error (the first few kept as samples)."""
    if error is None and latency is not None:
        into.ok += 1
        into.latencies.append(latency)
    else:
        into.errors += 1
        if error and len(into.error_samples) < MAX_ERROR_SAMPLES:
            into.error_samples.append(error)


class _Runner:
    """One process's share of a phase: its threads, its clock, its tally."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.result = JobResult()
        self.items = _Items(job.items, job.repeat, job.count)
        self.lock = threading.Lock()
        # One clock for scheduling: perf_counter, anchored to the common wall-clock start.
        self.start = time.perf_counter() + (job.start_at - time.time())
        self.deadline = self.start + job.duration if job.duration is not None else None

    def record(
        self,
        latency: float | None,
        error: str | None,
        lag: float = 0.0,
        taken: tuple[int, Item] | None = None,
        status: int = 0,
    ) -> None:
        result = self.result
        with self.lock:
            _tally(result, latency, error)
            result.max_send_lag = max(result.max_send_lag, lag)
            if taken is None:
                return
            index, item = taken
            if self.job.record_outcomes:
                result.outcomes.append((index, status, error is None))
            if item.kind:
                kind = result.by_kind.setdefault(item.kind, KindResult())
                kind.statuses[status] = kind.statuses.get(status, 0) + 1
                _tally(kind, latency, error)

    def one(
        self, connection: _Connection, taken: tuple[int, Item], since: float, lag: float = 0.0
    ) -> None:
        """Send one request; its latency counts from `since` (open loop: its due time)."""
        item = taken[1]
        expect = item.expect or self.job.expect
        try:
            status, body = connection.send(item)
        except Exception as exc:  # counted, not raised: a phase reports its errors
            self.record(None, f"{type(exc).__name__}: {exc}"[:200], lag, taken)
            return
        latency = time.perf_counter() - since
        if status != expect.status or not body.startswith(expect.body_prefix):
            self.record(None, f"HTTP {status}: {body[:120]!r}", lag, taken, status)
        else:
            self.record(latency, None, lag, taken, status)

    def _close(self, connection: _Connection) -> None:
        connection.close()
        with self.lock:
            self.result.reconnects += connection.reconnects

    def closed_thread(self) -> None:
        connection = _Connection(self.job.host, self.job.port)
        try:
            while self.deadline is None or time.perf_counter() < self.deadline:
                taken = self.items.take()
                if taken is None:
                    return
                self.one(connection, taken, time.perf_counter())
        finally:
            self._close(connection)

    def open_thread(self) -> None:
        job = self.job
        assert job.rate is not None
        interval = 1.0 / job.rate
        stop_at = self.start + job.give_up_after if job.give_up_after is not None else None
        connection = _Connection(job.host, job.port)
        try:
            while (taken := self.items.take(stop_at)) is not None:
                index = taken[0]
                if job.due is not None:
                    scheduled = self.start + job.due[index]
                else:
                    scheduled = self.start + job.first_slot + index * interval
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                self.one(connection, taken, scheduled, time.perf_counter() - scheduled)
        finally:
            self._close(connection)

    def run(self) -> JobResult:
        open_loop = self.job.rate is not None
        target = self.open_thread if open_loop else self.closed_thread
        threads = [threading.Thread(target=target, daemon=True) for _ in range(self.job.threads)]
        delay = self.start - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        result = self.result
        cpu_before = _cpu()
        result.started = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.finished = time.time()
        result.cpu_seconds = _cpu() - cpu_before
        result.sent = self.items.taken
        if self.items.limit is not None:
            result.dropped = self.items.limit - self.items.taken if open_loop else 0
        return result


def run_job(job: Job) -> JobResult:
    """Run one process's share of a phase (called in a generator process)."""
    return _Runner(job).run()


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores) since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS  # guest time is already in user


def _ready() -> bool:
    return True


# --- in the benchmark process -----------------------------------------------------


class LoadGenerator:
    """A pool of generator processes, kept for a whole benchmark (spawned once).

    Use as a context manager; `closed_loop` and `open_loop` split the work
    evenly over the processes and aggregate what they measured.
    """

    def __init__(self, host: str, port: int, *, processes: int = 2) -> None:
        self.host, self.port, self.processes = host, port, processes
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LoadGenerator:
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=context)
        # Start every process now, not inside the first measured phase.
        for future in [self._pool.submit(_ready) for _ in range(self.processes * 2)]:
            future.result(timeout=60)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _run(self, jobs: list[Job], timeout: float) -> LoadResult:
        assert self._pool is not None, "use LoadGenerator as a context manager"
        futures = [self._pool.submit(run_job, job) for job in jobs]
        delay = jobs[0].start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        busy_before = machine_busy_seconds()
        results = [future.result(timeout=timeout) for future in futures]
        busy = machine_busy_seconds() - busy_before
        latencies = [latency for r in results for latency in r.latencies]
        samples = [s for r in results for s in r.error_samples][:MAX_ERROR_SAMPLES]
        started = min(r.started for r in results)
        finished = max(r.finished for r in results)
        return LoadResult(
            requests=sum(r.ok + r.errors for r in results),
            ok=sum(r.ok for r in results),
            errors=sum(r.errors for r in results),
            elapsed=finished - started,
            latencies=latencies,
            generator_cpu_seconds=sum(r.cpu_seconds for r in results),
            error_samples=samples,
            reconnects=sum(r.reconnects for r in results),
            max_send_lag=max(r.max_send_lag for r in results),
            sent_per_job=[r.sent for r in results],
            dropped=sum(r.dropped for r in results),
            machine_busy=busy,
            by_kind=merge_kinds(r.by_kind for r in results),
            outcomes_per_job=[r.outcomes for r in results],
        )

    def split(self, items: Sequence[Item]) -> list[list[Item]]:
        """Items dealt round-robin to the processes (process k gets items k, k+P, ...)."""
        return [list(items[k :: self.processes]) for k in range(self.processes)]

    def _jobs(
        self,
        items: Sequence[Item],
        *,
        repeat: bool,
        connections: int,
        start_at: float,
        expect: Expect,
        record_outcomes: bool,
    ) -> list[Job]:
        """One job per process: its share of `items` (all of them with repeat) and of the
        connections (as threads); the caller sets the rest of each job."""
        shares = self.split(items) if not repeat else [list(items)] * self.processes
        return [
            Job(
                host=self.host,
                port=self.port,
                items=shares[k],
                repeat=repeat,
                threads=self._share(connections, k),
                start_at=start_at,
                expect=expect,
                record_outcomes=record_outcomes,
            )
            for k in range(self.processes)
        ]

    def _share(self, n: int, k: int) -> int:
        """Process k's part of n (connections, requests): as even as can be, the first get more."""
        return n // self.processes + (k < n % self.processes)

    def closed_loop(
        self,
        items: Sequence[Item],
        *,
        connections: int,
        expect: Expect,
        repeat: bool = False,
        count: int | None = None,
        duration: float | None = None,
        record_outcomes: bool = False,
    ) -> LoadResult:
        """`connections` connections in a closed loop, for `count` requests and/or `duration` s.

        With repeat=False every item is sent at most once; process k sends from
        `split(items)[k]`, and LoadResult.sent_per_job says how many it used.
        With record_outcomes, LoadResult.outcomes_per_job[k] has each request's
        (index into split(items)[k], HTTP status, as expected): see `item_outcomes`.
        """
        if count is None and duration is None and repeat:
            raise ValueError("a repeating closed loop needs a count or a duration")
        if connections < self.processes:
            raise ValueError("at least one connection per generator process")
        jobs = self._jobs(
            items,
            repeat=repeat,
            connections=connections,
            start_at=time.time() + START_MARGIN,
            expect=expect,
            record_outcomes=record_outcomes,
        )
        jobs = [
            replace(job, duration=duration, count=None if count is None else self._share(count, k))
            for k, job in enumerate(jobs)
        ]
        bound = (duration or 0) + 120 + (count or 0) * 0.5
        return self._run(jobs, timeout=bound)

    def open_loop(
        self,
        items: Sequence[Item],
        *,
        rate: float,
        duration: float,
        connections: int,
        expect: Expect,
        repeat: bool = False,
        record_outcomes: bool = False,
        due: Sequence[float] | None = None,
    ) -> LoadResult:
        """`rate` requests per second for `duration` seconds, from a fixed schedule.

        Request i of the whole phase is due at start + i / rate; process k owns
        the requests i = k, k+P, ... Latency counts from the due time.

        `due` (not with repeat) replaces the schedule: request i is due at
        start + due[i] seconds (non-decreasing; requests sharing a due time are
        sent at the same moment, e.g. concurrent copies of one request). With
        record_outcomes, LoadResult.outcomes_per_job is as for `closed_loop`
        (`item_outcomes` maps it back to indexes into `items`).
        """
        total = int(rate * duration)
        _check_schedule(items, total, repeat, due)
        last_due = due[total - 1] if due is not None and total else 0.0
        jobs = self._jobs(
            items if repeat else items[:total],
            repeat=repeat,
            connections=connections,
            start_at=time.time() + START_MARGIN * 2,
            expect=expect,
            record_outcomes=record_outcomes,
        )
        jobs = [
            replace(
                job,
                count=len(range(k, total, self.processes)),  # its slots: k, k+P, ...
                rate=rate / self.processes,
                first_slot=k / rate,
                give_up_after=max(duration, last_due) + OPEN_LOOP_GRACE,
                due=None if due is None else list(due[:total][k :: self.processes]),
            )
            for k, job in enumerate(jobs)
        ]
        bound = max(duration, last_due) + OPEN_LOOP_GRACE + 2 * SOCKET_TIMEOUT + 30
        return self._run(jobs, timeout=bound)


def _check_schedule(
    items: Sequence[Item], total: int, repeat: bool, due: Sequence[float] | None
) -> None:
    """ValueError unless `total` requests can be scheduled (enough items, due times)."""
    if not repeat and len(items) < total:
        raise ValueError(f"open loop needs {total} items, got {len(items)}")
    if due is not None and (repeat or len(due) < total):
        raise ValueError(f"open loop: {total} due times needed (and repeat=False)")
    if due is not None and any(b < a for a, b in pairwise(due[:total])):
        raise ValueError("open loop: due times must not decrease")


def used_items(items: Sequence[Item], processes: int, sent_per_job: list[int]) -> Iterator[int]:
    """Indexes into `items` of the items a non-repeating phase used (sent or failed)."""
    for k, sent in enumerate(sent_per_job):
        yield from range(k, len(items), processes)[:sent]


def merge_kinds(parts: Iterable[dict[str, KindResult]]) -> dict[str, KindResult]:
    """Per-kind results of several jobs (or phases) added up."""
    merged: dict[str, KindResult] = {}
    for part in parts:
        for kind, found in part.items():
            merged.setdefault(kind, KindResult()).add(found)
    return merged


def item_outcomes(
    items: Sequence[Item], processes: int, outcomes_per_job: list[list[tuple[int, int, bool]]]
) -> Iterator[tuple[int, int, bool]]:
    """(index into `items`, HTTP status, as expected) of each request of a non-repeating phase.

    Process k sent `items[k::processes]`: its index j is items[k + j * processes].
    """
    for k, outcomes in enumerate(outcomes_per_job):
        for j, status, ok in outcomes:
            yield k + j * processes, status, ok
