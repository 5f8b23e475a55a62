"""The database-backed nonce: increasing per key, across threads, restarts and clock changes."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from django.db import connections

from payments import nonces
from payments.models import GatewayNonce
from payments.nonces import nonce_next

KEY = "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f"
OTHER_KEY = "0c2a6b8e-3f1d-4c55-9a7e-6d1b2f3e4a5c"


def now_us() -> int:
    return time.time_ns() // 1000


@pytest.mark.django_db
def test_values_strictly_increase() -> None:
    values = [nonce_next(api_key=KEY) for _ in range(50)]
    assert all(earlier < later for earlier, later in itertools.pairwise(values))


@pytest.mark.django_db
def test_a_value_is_at_least_the_time_in_microseconds() -> None:
    before = now_us()
    value = nonce_next(api_key=KEY)
    assert before <= value <= now_us()


@pytest.mark.django_db
def test_the_stored_row_holds_the_last_value() -> None:
    value = nonce_next(api_key=KEY)
    assert GatewayNonce.objects.get(api_key=KEY).last_value == value


@pytest.mark.django_db
def test_values_keep_increasing_when_the_clock_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    first = nonce_next(api_key=KEY)
    monkeypatch.setattr(nonces, "_now_microseconds", lambda: first - 3_600_000_000)  # 1 h back

    assert nonce_next(api_key=KEY) == first + 1
    assert nonce_next(api_key=KEY) == first + 2


@pytest.mark.django_db
def test_a_restart_with_the_clock_set_back_continues_from_the_stored_value() -> None:
    # What a previous run left in the database, far ahead of this machine's clock.
    GatewayNonce.objects.create(api_key=KEY, last_value=now_us() + 10**12)
    stored = GatewayNonce.objects.get(api_key=KEY).last_value
    assert nonce_next(api_key=KEY) == stored + 1


@pytest.mark.django_db
def test_an_old_stored_value_jumps_to_the_current_time(monkeypatch: pytest.MonkeyPatch) -> None:
    GatewayNonce.objects.create(api_key=KEY, last_value=1_000)
    monkeypatch.setattr(nonces, "_now_microseconds", lambda: 1_353_558_000_000_001)
    assert nonce_next(api_key=KEY) == 1_353_558_000_000_001


@pytest.mark.django_db
def test_keys_are_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nonces, "_now_microseconds", lambda: 1_000_000)
    assert [nonce_next(api_key=KEY) for _ in range(3)] == [1_000_000, 1_000_001, 1_000_002]
    assert nonce_next(api_key=OTHER_KEY) == 1_000_000
    assert nonce_next(api_key=KEY) == 1_000_003
    assert GatewayNonce.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("clock", ["frozen", "real"])
def test_concurrent_callers_never_get_the_same_value(
    monkeypatch: pytest.MonkeyPatch, clock: str
) -> None:
    frozen_at = 1_353_558_000_000_001
    if clock == "frozen":
        # Every value then comes from the counter: a read-then-write race would repeat one.
        monkeypatch.setattr(nonces, "_now_microseconds", lambda: frozen_at)
    threads_count, calls = 8, 50
    results: list[list[int]] = [[] for _ in range(threads_count)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads_count)

    def work(index: int) -> None:
        try:
            start.wait()
            for _ in range(calls):
                results[index].append(nonce_next(api_key=KEY))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    values = [value for per_thread in results for value in per_thread]
    assert len(values) == threads_count * calls
    assert len(set(values)) == threads_count * calls
    for per_thread in results:  # each caller also sees its own values increase
        assert per_thread == sorted(per_thread)
    assert GatewayNonce.objects.get(api_key=KEY).last_value == max(values)
    if clock == "frozen":
        assert sorted(values) == list(range(frozen_at, frozen_at + threads_count * calls))
