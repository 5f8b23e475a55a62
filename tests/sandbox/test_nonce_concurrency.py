"""The nonce check-and-advance is race-free: concurrent requests, real database transactions."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from sandbox.models import SandboxAccount, SandboxOrder
from tests.sandbox.conftest import ORDER_CREATE, ORDER_FIELDS, Api

THREADS = 8
NO_IPN = {name: value for name, value in ORDER_FIELDS.items() if name != "ipn"}


def post_concurrently(account: SandboxAccount, nonces: list[int]) -> list[tuple[int, Any]]:
    """POST order/create once per nonce, all threads released at the same moment."""
    barrier = threading.Barrier(len(nonces))
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def one(nonce: int) -> None:
        try:
            api = Api(Client(), account)
            body = api.body(NO_IPN, nonce)
            barrier.wait(timeout=30)
            response = api.raw(ORDER_CREATE, body)
            with lock:
                results.append((nonce, response))
        finally:
            connection.close()  # each thread's own connection

    threads = [threading.Thread(target=one, args=(nonce,)) for nonce in nonces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == len(nonces)
    return results


@pytest.mark.django_db(transaction=True)
def test_threads_posting_the_same_nonce_exactly_one_is_accepted(account: SandboxAccount) -> None:
    for round_number in range(1, 4):
        nonce = 1000 * round_number
        results = post_concurrently(account, [nonce] * THREADS)

        outcomes = Counter(
            response.status_code
            if response.status_code == 200
            else (response.status_code, response.json()["token"])
            for _, response in results
        )
        assert outcomes == {200: 1, (403, "login_error_invalid_nonce"): THREADS - 1}, outcomes
        assert SandboxOrder.objects.count() == round_number
        account.refresh_from_db()
        assert account.last_nonce == nonce


@pytest.mark.django_db(transaction=True)
def test_threads_with_distinct_nonces_never_move_the_nonce_backwards(
    account: SandboxAccount,
) -> None:
    nonces = [5000 + n for n in range(THREADS)]

    results = post_concurrently(account, nonces)

    accepted = sorted(nonce for nonce, response in results if response.status_code == 200)
    refused = [response for _, response in results if response.status_code != 200]
    assert accepted, "at least one request wins"
    assert all(r.json()["token"] == "login_error_invalid_nonce" for r in refused)
    assert SandboxOrder.objects.count() == len(accepted)
    account.refresh_from_db()
    # The largest nonce accepted is the last one; nothing smaller overwrote it.
    assert account.last_nonce == accepted[-1]
