"""A small forwarding HTTP proxy in front of the service, for the end-to-end tests.

The service's processes get `PUBLIC_BASE_URL` pointing here, so everything the
outside world sends to the service passes through it: the browser's pages, the
service's own calls to the sandbox gateway, and the gateway's IPN POSTs to
`/payments/ipn/`. Everything is forwarded unchanged (the Host header too, so
CSRF origins and ALLOWED_HOSTS see the public address), except that a test can:

- `hold_ipns(transaction)`: keep that order's IPNs waiting until `release_ipns`
  (the payer's page is then seen before the notification is applied);
- `fail_ipns(transaction, replies)`: answer that order's first IPNs with the given
  (status, body) instead of forwarding them, as a receiver that is down would.

Every IPN POST is recorded (`ipns(transaction)`) with how it was answered.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from tests.http_receiver import QuietHandler, serve_in_background

IPN_PATH = "/payments/ipn/"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


@dataclass
class IpnSeen:
    """One IPN POST that reached the proxy, and what the gateway got back."""

    transaction: str
    status: str
    reply_status: int
    reply: bytes
    forwarded: bool


@dataclass
class ForwardingProxy:
    upstream_port: int
    hold_seconds: float = 10.0
    url: str = ""
    seen: list[IpnSeen] = field(default_factory=list)
    _failures: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    _holds: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None

    # --- what a test scripts -------------------------------------------------------
    def fail_ipns(self, transaction: str, replies: list[tuple[int, bytes]]) -> None:
        """Answer the next IPNs for `transaction` with these replies, one each, in order."""
        with self._lock:
            self._failures[str(transaction)] = list(replies)

    def hold_ipns(self, transaction: str) -> None:
        """Keep IPNs for `transaction` waiting (at most `hold_seconds`) until released."""
        with self._lock:
            self._holds[str(transaction)] = threading.Event()

    def release_ipns(self, transaction: str) -> None:
        with self._lock:
            gate = self._holds.pop(str(transaction), None)
        if gate is not None:
            gate.set()

    def ipns(self, transaction: str) -> list[IpnSeen]:
        with self._lock:
            return [seen for seen in self.seen if seen.transaction == str(transaction)]

    # --- the server -------------------------------------------------------------------
    def start(self) -> ForwardingProxy:
        proxy = self

        class Handler(QuietHandler):
            # HTTP/1.0: one request per connection, no keep-alive bookkeeping to get wrong.
            protocol_version = "HTTP/1.0"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "POST" and self.path.split("?")[0] == IPN_PATH:
                    proxy._ipn(self, body)
                else:
                    proxy._forward(self, body)

            do_GET = do_POST = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

        server = serve_in_background(Handler)
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        with self._lock:
            gates = list(self._holds.values())
            self._holds.clear()
        for gate in gates:
            gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _ipn(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        fields = parse_qs(body.decode("ascii", errors="replace"))
        transaction = (fields.get("id") or [""])[0]
        status = (fields.get("status") or [""])[0]
        with self._lock:
            scripted = self._failures.get(transaction)
            failure = scripted.pop(0) if scripted else None
            gate = self._holds.get(transaction)
        if failure is not None:
            reply_status, reply = failure
            self._answer(handler, reply_status, [("Content-Type", "text/plain")], reply)
            forwarded = False
        else:
            if gate is not None:
                gate.wait(self.hold_seconds)
            reply_status, reply = self._forward(handler, body)
            forwarded = True
        with self._lock:
            self.seen.append(IpnSeen(transaction, status, reply_status, reply, forwarded))

    def _forward(
        self, handler: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            headers = {
                name: value
                for name, value in handler.headers.items()
                if name.lower() not in HOP_BY_HOP
            }
            if body or handler.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            upstream.request(handler.command, handler.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            reply = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            self._answer(handler, response.status, kept, reply)
            return response.status, reply
        except OSError as exc:
            message = f"proxy: upstream unreachable: {exc}".encode()
            self._answer(handler, 502, [("Content-Type", "text/plain")], message)
            return 502, message
        finally:
            upstream.close()

    @staticmethod
    def _answer(
        handler: http.server.BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        try:
            handler.send_response_only(status)  # upstream's own Date and Server pass through
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)
        except OSError:
            pass  # the client stopped waiting
