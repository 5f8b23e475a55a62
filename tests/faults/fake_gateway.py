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
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

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
                body = step.body
                if step.created:
                    transaction = str(uuid.uuid4())
                    with gateway._lock:
                        gateway.created.append(transaction)
                    body = json.dumps(
                        {
                            "result": "success",
                            "return": {
                                "transaction": transaction,
                                "payment_url": f"{gateway.url}pay/{transaction}",
                            },
                        }
                    ).encode()
                try:
                    self.send_response(step.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
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
