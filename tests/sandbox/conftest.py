"""Helpers for the sandbox gateway's tests: signed API calls, orders, an IPN receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from payments.gateway import signing
from sandbox import services
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxAccount, SandboxOrder
from sandbox.params import OrderInput
from tests.http_receiver import ScriptedReceiver, scripted

USER_AGENT = "sandbox-tests/1.0"
API = "/sandbox/api/"
ORDER_CREATE = "1/generic/private/merchant/order/create"

ORDER_FIELDS: dict[str, str] = {
    "currency": "USD",
    "amount_int": "1250000",
    "return_success": "https://shop.example/paid?order=42",
    "return_failure": "https://shop.example/cancelled?order=42",
    "ipn": "https://shop.example/payments/ipn/",
    "data": "order-42",
    "description": "Order 42 at the example shop",
}


class Api:
    """Signed calls to the sandbox API, the way the gateway's clients make them."""

    def __init__(self, client: Client, account: SandboxAccount) -> None:
        self.client = client
        self.key = str(account.api_key)
        self.secret = account.secret
        self.nonce = 1_000_000

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def body(self, fields: Sequence[tuple[str, str]] | dict[str, str], nonce: int | None) -> bytes:
        pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
        if nonce is not None:
            pairs.append(("nonce", str(nonce)))
        return urlencode(pairs).encode("ascii")

    def raw(
        self,
        method: str,
        body: bytes,
        *,
        key: str | None = "default",
        sign: str | None = "default",
        user_agent: str | None = USER_AGENT,
    ) -> Any:
        headers: dict[str, str] = {}
        if user_agent is not None:
            headers["User-Agent"] = user_agent
        if key is not None:
            headers["Rest-Key"] = self.key if key == "default" else key
        if sign is not None:
            headers["Rest-Sign"] = signing.sign(body, self.secret) if sign == "default" else sign
        return self.client.generic(
            "POST",
            API + method,
            body,
            content_type="application/x-www-form-urlencoded",
            headers=headers,
        )

    def call(
        self,
        method: str,
        fields: Sequence[tuple[str, str]] | dict[str, str] = (),
        *,
        nonce: int | None = None,
        **kwargs: Any,
    ) -> Any:
        return self.raw(method, self.body(fields, nonce or self.next_nonce()), **kwargs)

    def create_order(self, overrides: Mapping[str, str | None] | None = None, **kwargs: Any) -> Any:
        """order/create with ORDER_FIELDS, changed by `overrides` (None drops a field)."""
        fields = {**ORDER_FIELDS, **(overrides or {})}
        present = {name: value for name, value in fields.items() if value is not None}
        return self.call(ORDER_CREATE, present, **kwargs)


@pytest.fixture
def account(db: None) -> SandboxAccount:
    return ensure_configured_account()[0]


@pytest.fixture
def api(client: Client, account: SandboxAccount) -> Api:
    return Api(client, account)


def assert_error(response: Any, token: str, status: int, mentions: str | None = None) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["result"] == "error"
    assert body["token"] == token
    assert isinstance(body["error"], str) and body["error"]
    if mentions is not None:
        assert mentions in body["error"], body["error"]


def make_order(account: SandboxAccount, **overrides: Any) -> SandboxOrder:
    """An order created directly through the service (what order/create would store)."""
    values: dict[str, Any] = {
        "currency": "BTC",
        "amount_int": 50_000_000,
        "return_success": ORDER_FIELDS["return_success"],
        "return_failure": ORDER_FIELDS["return_failure"],
        "ipn": ORDER_FIELDS["ipn"],
        "data": ORDER_FIELDS["data"],
        "description": "A test order",
    }
    values.update(overrides)
    return services.order_create(account=account, data=OrderInput(**values))


# --- An IPN receiver: a real HTTP server in a thread -------------------------------

Receiver = ScriptedReceiver


@pytest.fixture
def ipn_receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(*replies: tuple[int, bytes] | tuple[int, bytes, float]) -> Receiver:
        receiver = Receiver(scripted(replies), path="/payments/ipn/").start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def fast_ipn_retries(settings: Any) -> Any:
    """Retries due at once (the tests call the attempts themselves)."""
    settings.SANDBOX_IPN_RETRY_SECONDS = 0
    settings.SANDBOX_IPN_TIMEOUT = 2.0
    return settings
