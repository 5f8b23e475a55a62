"""A scripted gateway on a real socket: slow, failing, garbage, or answering as the protocol says.

Like tests/http_receiver.py, but each step may also drop the connection without a
reply, a success step answers a fresh `merchant/order/create` result, and every
request is counted: how many times the order creation reached the gateway.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from sandbox import currencies
from tests.http_receiver import QuietHandler, serve_in_background


@dataclass(frozen=True)
class Step:
    """One reply: `status` and `body` after `delay` s; `created` answers a new order; or `drop`."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    created: bool = False
    drop: bool = False


CREATED = Step(created=True)


@dataclass
class FakeGateway:
    """Answers POSTs with the next scripted step; the last step repeats."""

    steps: list[Step]
    # The public ticker (a fiat order's quote) is answered apart from the steps: with
    # the sandbox's prices, or with this step (e.g. Step(503): the ticker is down).
    ticker: Step | None = None
    ticker_requests: list[str] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # transactions it answered with
    url: str = ""
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeGateway:
        gateway = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/ticker"):
                    gateway.ticker_requests.append(self.path)
                    self.reply(gateway.ticker or _sandbox_ticker(self.path))
                    return
                with gateway._lock:
                    index = len(gateway.requests)
                    gateway.requests.append(dict(parse_qsl(raw.decode())))
                    step = gateway.steps[min(index, len(gateway.steps) - 1)]
                if step.delay:
                    time.sleep(step.delay)
                if step.drop:
                    self.close_connection = True
                    self.connection.close()  # the request arrived; no reply ever comes
                    return
                if step.created:
                    transaction = str(uuid.uuid4())
                    with gateway._lock:
                        gateway.created.append(transaction)
                    payment_url = f"{gateway.url}pay/{transaction}"
                    reply = {"transaction": transaction, "payment_url": payment_url}
                    step = Step(body=_success(reply))
                self.reply(step)

            def reply(self, step: Step) -> None:
                try:
                    self.send_response(step.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(step.body)))
                    self.end_headers()
                    self.wfile.write(step.body)
                except OSError:
                    pass  # the client stopped waiting (its read timeout)

        server = serve_in_background(Handler)
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
        return self

    def order_creations(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if "amount_int" in r)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _success(reply: Mapping[str, object]) -> bytes:
    return json.dumps({"result": "success", "return": reply}).encode()


def _sandbox_ticker(path: str) -> Step:
    """`.../1/BTC<CUR>/ticker` answered with the sandbox's prices."""
    return Step(body=_success(currencies.ticker(path.split("/")[-2][3:])))
