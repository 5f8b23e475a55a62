"""The network pieces a multi-node test puts between the processes: a load balancer and a tap.

`RoundRobinBalancer` is a TCP load balancer as small as it gets: each new connection goes to
the next backend in turn; when that backend refuses the connection (its node is down) the
next one is tried, as a balancer with passive health checks does. A connection already open
to a node that dies is simply cut, as it would be in production.

`RecordingHttpProxy` stands in front of the sandbox gateway's API and writes down every
`merchant/order/create` call: the `nonce` of its signed body, in the order the calls arrived,
and the gateway's answer, so that a test can check the gateway refused no nonce as stale.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import socket
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

from tests.faults.proxy import _close
from tests.http_receiver import QuietHandler

HOST = "127.0.0.1"


class RoundRobinBalancer:
    """Forwards 127.0.0.1:<port> to `backends` in turn, skipping a backend that refuses."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self._next = 0
        self._lock = threading.Lock()
        self.connections: list[int] = [0] * len(backends)  # per backend, for the summary
        self.failovers = 0  # connections a refusing backend passed on to the next
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(128)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> RoundRobinBalancer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        with self._lock:
            first, self._next = self._next, (self._next + 1) % len(self.backends)
        for offset in range(len(self.backends)):
            index = (first + offset) % len(self.backends)
            try:
                upstream = socket.create_connection(self.backends[index], timeout=2)
            except OSError:
                continue
            upstream.settimeout(None)
            with self._lock:
                self.connections[index] += 1
                self.failovers += 1 if offset else 0
            return upstream
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:  # every backend down: the client sees its connection closed
            _close(client)
            return
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    _close(source)
    _close(sink)


@dataclass(frozen=True)
class GatewayCall:
    """One merchant/order/create call as it passed the tap."""

    seq: int  # arrival order
    nonce: int
    status: int  # the gateway's HTTP status (0: no answer)
    result: str  # the reply's `result` ("success", "error") or what went wrong
    error: str  # the reply's error token, if any (e.g. login_error_invalid_nonce)


class RecordingHttpProxy:
    """An HTTP/1.1 reverse proxy to `upstream_port` that records merchant/order/create calls."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.calls: list[GatewayCall] = []
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> RecordingHttpProxy:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _arrived(self, body: bytes) -> int:
        nonce = int(parse_qs(body.decode("ascii")).get("nonce", ["0"])[0])
        with self._lock:
            self.calls.append(GatewayCall(len(self.calls), nonce, 0, "no answer", ""))
            return len(self.calls) - 1

    def _answered(self, seq: int, status: int, content: bytes) -> None:
        try:
            reply = json.loads(content)
        except ValueError:
            reply = {}
        result = str(reply.get("result", "unreadable")) if isinstance(reply, dict) else "?"
        token = str(reply.get("token", "")) if isinstance(reply, dict) else ""
        with self._lock:
            self.calls[seq] = GatewayCall(seq, self.calls[seq].nonce, status, result, token)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the service's requests.Session uses

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The caller's node was killed mid-request: no HTTP server acts on a cut
                    # request, so neither forward it to the gateway nor count it as a call.
                    self.close_connection = True
                    return
                seq = proxy._arrived(body) if self.path.endswith("merchant/order/create") else -1
                upstream = http.client.HTTPConnection(HOST, proxy.upstream_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream.request("POST", self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    content = answer.read()
                finally:
                    upstream.close()
                if seq >= 0:
                    proxy._answered(seq, answer.status, content)
                with contextlib.suppress(OSError):  # the caller's node was killed meanwhile
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.getheader("Content-Type") or "")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)

        return Handler
