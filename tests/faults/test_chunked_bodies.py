"""Request bodies sent with `Transfer-Encoding: chunked`, over HTTP to a real gunicorn.

Several HTTP clients send a body without Content-Length (`requests` with a
generator, curl with `-H 'Transfer-Encoding: chunked'`). gunicorn de-chunks
it; the IPN endpoint and the sandbox's API must read it in full, verify the
signature over exactly those bytes, and refuse one over their size limit
(413) as they refuse a Content-Length one. These tests live here for the
service process this package starts (`service`: gunicorn as the Procfile runs
it, on the test database); nothing is taken away from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from django.conf import settings

from payments.gateway.signing import sign
from payments.ipn import MAX_BODY_BYTES
from payments.models import Notification, Order, Payment, RejectedNotification
from payments.testing import IPN_PATH, ipn_body, signed_headers
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxAccount, SandboxOrder

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_CREATE = "/sandbox/api/1/generic/private/merchant/order/create"
ORDER_FIELDS = {
    "currency": "USD",
    "amount_int": "1250000",
    "return_success": "https://shop.example/paid",
    "return_failure": "https://shop.example/cancelled",
    "description": "sent chunked",
}


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    """A generator: `requests` sends it chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def post_chunked(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    response = requests.post(url, data=chunks(body), headers=headers, timeout=30)
    sent = response.request.headers
    assert sent.get("Transfer-Encoding") == "chunked" and "Content-Length" not in sent
    return response


@pytest.fixture
def gunicorn(service: Callable[..., Any]) -> Any:
    return service()


@pytest.fixture
def account(transactional_db: None) -> SandboxAccount:
    return ensure_configured_account()[0]


def paid_body(order: Order) -> bytes:
    return ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)


def order_create_body(nonce: int, **extra: str) -> bytes:
    return urlencode({**ORDER_FIELDS, **extra, "nonce": str(nonce)}).encode("ascii")


def sandbox_headers(account: SandboxAccount, body: bytes, secret: str | None = None) -> dict:
    return {
        "Rest-Key": str(account.api_key),
        "Rest-Sign": sign(body, secret or account.secret),
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "chunked-tests/1.0",
    }


# --- the IPN endpoint ---------------------------------------------------------------


def test_a_chunked_signed_ipn_is_stored_applied_and_acknowledged(
    gunicorn: Any, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    body = paid_body(order)

    response = post_chunked(gunicorn.url + IPN_PATH, body, signed_headers(body))

    assert (response.status_code, response.content) == (200, b"[OK]")
    stored = Notification.objects.get()
    assert bytes(stored.body) == body
    assert stored.outcome == "applied"
    order.refresh_from_db()
    assert order.status == "paid"
    assert Payment.objects.get().order_id == order.pk


def test_a_chunked_forged_ipn_is_403_and_changes_nothing(
    gunicorn: Any, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    body = paid_body(order)
    forged = signed_headers(body, api_secret="Zm9yZ2VkLXNlY3JldA==")

    response = post_chunked(gunicorn.url + IPN_PATH, body, forged)

    assert response.status_code == 403
    assert not Notification.objects.exists() and not Payment.objects.exists()
    order.refresh_from_db()
    assert order.status == "awaiting_payment"
    rejected = RejectedNotification.objects.get()
    assert rejected.reason == "bad_signature"
    assert rejected.sample.startswith(f"id={order.transaction}")  # the de-chunked body


def test_a_chunked_ipn_over_the_limit_is_413_and_stores_nothing(
    gunicorn: Any, make_order: Callable[..., Order]
) -> None:
    order = make_order()
    body = ipn_body(
        transaction=order.transaction,
        status="paid",
        amount_int=order.amount_int,
        data="x" * MAX_BODY_BYTES,
    )
    assert len(body) > MAX_BODY_BYTES

    response = post_chunked(gunicorn.url + IPN_PATH, body, signed_headers(body))

    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.text
    assert not Notification.objects.exists()
    assert not RejectedNotification.objects.exists()
    order.refresh_from_db()
    assert order.status == "awaiting_payment"


# --- the sandbox's private API ------------------------------------------------------


def test_a_chunked_signed_order_create_is_verified_and_creates_the_order(
    gunicorn: Any, account: SandboxAccount
) -> None:
    body = order_create_body(nonce=7)

    response = post_chunked(gunicorn.url + ORDER_CREATE, body, sandbox_headers(account, body))

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["result"] == "success"
    created = SandboxOrder.objects.get(transaction=answer["return"]["transaction"])
    assert (created.account_id, created.amount_int, created.currency) == (
        account.pk,
        1_250_000,
        "USD",
    )
    assert created.description == "sent chunked"
    account.refresh_from_db()
    assert account.last_nonce == 7


def test_a_chunked_call_with_a_bad_signature_is_refused_as_a_plain_one_is(
    gunicorn: Any, account: SandboxAccount
) -> None:
    body = order_create_body(nonce=8)
    headers = sandbox_headers(account, body, secret="Zm9yZ2VkLXNlY3JldA==")

    chunked = post_chunked(gunicorn.url + ORDER_CREATE, body, headers)
    plain = requests.post(gunicorn.url + ORDER_CREATE, data=body, headers=headers, timeout=30)

    assert plain.status_code == 403
    assert (chunked.status_code, chunked.json()) == (plain.status_code, plain.json())
    assert chunked.json()["token"] == "login_error_invalid_rest_sign"
    assert not SandboxOrder.objects.exists()
    account.refresh_from_db()
    assert account.last_nonce == 0


def test_a_chunked_call_over_the_limit_is_413(gunicorn: Any, account: SandboxAccount) -> None:
    body = order_create_body(nonce=9, description="x" * settings.SANDBOX_MAX_REQUEST_BYTES)

    response = post_chunked(gunicorn.url + ORDER_CREATE, body, sandbox_headers(account, body))

    assert response.status_code == 413
    assert response.json()["token"] == "request_too_large"
    assert not SandboxOrder.objects.exists()
    account.refresh_from_db()
    assert account.last_nonce == 0
