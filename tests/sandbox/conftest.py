"""Helpers for the sandbox gateway's tests: signed API calls, orders, an IPN receiver."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from payments.gateway import signing
from sandbox import services
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxAccount, SandboxOrder
from sandbox.params import OrderInput

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


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next scripted reply (the last one repeats)."""

    replies: list[tuple[int, bytes, float]]
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                index = len(receiver.received)
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                status, reply, delay = receiver.replies[min(index, len(receiver.replies) - 1)]
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the gateway gave up waiting (timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/payments/ipn/"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def ipn_receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(*replies: tuple[int, bytes] | tuple[int, bytes, float]) -> Receiver:
        scripted = [(r[0], r[1], float(r[2]) if len(r) > 2 else 0.0) for r in replies]
        receiver = Receiver(scripted).start()
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
