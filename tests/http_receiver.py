"""A real HTTP server in a thread that answers POSTs with scripted replies.

Stands in for the far side of an HTTP boundary in tests: the service's IPN
endpoint (for the sandbox's deliveries) or a shop's webhook endpoint.
"""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field
from typing import Any


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of access lines."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_in_background(
    handler: type[http.server.BaseHTTPRequestHandler],
) -> http.server.ThreadingHTTPServer:
    """A threading HTTP server on a free loopback port, serving from a daemon thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedReceiver:
    """Answers each POST with the next scripted (status, body, delay); the last one repeats."""

    replies: list[tuple[int, bytes, float]]
    path: str = "/"
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> ScriptedReceiver:
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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
                    pass  # the sender stopped waiting (timeout)

        server = serve_in_background(Handler)
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}{self.path}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def scripted(
    replies: tuple[tuple[int, bytes] | tuple[int, bytes, float], ...],
) -> list[tuple[int, bytes, float]]:
    """(status, body[, delay]) tuples with the delay filled in."""
    return [(r[0], r[1], float(r[2]) if len(r) > 2 else 0.0) for r in replies]
