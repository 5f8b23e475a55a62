"""The gateway client's kept sessions: connections reused, idle ones dropped, one per thread.

Against a real HTTP/1.1 server on 127.0.0.1 that records which client
connection (source port) carried each request.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from payments.gateway import GatewayClient, GatewayConfig
from payments.gateway.sessions import GatewaySession, thread_session

SECRET = "c2FuZGJveC1tZXJjaGFudC1zZWNyZXQ="
ACCOUNT = {"Login": "m", "Id": str(uuid.uuid4()), "Rights": [], "Wallets": {}}
REPLY = json.dumps({"result": "success", "return": ACCOUNT}).encode()


class KeepAliveServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.ports: list[int] = []  # the client's source port, per request

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the gateway's servers do

            def do_POST(handler) -> None:
                handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
                self.ports.append(handler.client_address[1])
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(REPLY)))
                handler.end_headers()
                handler.wfile.write(REPLY)

            def log_message(handler, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/"


@pytest.fixture
def server() -> Iterator[KeepAliveServer]:
    running = KeepAliveServer()
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield running
    running.shutdown()
    running.server_close()
    thread.join()


def client(url: str, session: GatewaySession | None = None) -> GatewayClient:
    nonces = iter(range(1_000_000, 2_000_000))
    config = GatewayConfig(api_url=url, api_key="k", api_secret=SECRET, user_agent="tests/1.0")
    cache: Any = {}
    return GatewayClient(config, nonce_source=lambda: next(nonces), cache=cache, session=session)


def test_calls_reuse_one_connection(server: KeepAliveServer) -> None:
    with GatewaySession(server.url) as session:
        for _ in range(3):
            client(server.url, session).info()

    assert len(server.ports) == 3
    assert len(set(server.ports)) == 1


def test_a_connection_idle_longer_than_max_idle_is_not_reused(server: KeepAliveServer) -> None:
    with GatewaySession(server.url, max_idle=0.0) as session:
        for _ in range(3):
            client(server.url, session).info()

    assert len(set(server.ports)) == 3


def test_closing_a_client_leaves_the_caller_s_session_open(server: KeepAliveServer) -> None:
    with GatewaySession(server.url) as session:
        with client(server.url, session) as first:
            first.info()
        with client(server.url, session) as second:
            second.info()

    assert len(set(server.ports)) == 1


def test_a_thread_keeps_its_session_and_other_threads_have_their_own(
    server: KeepAliveServer,
) -> None:
    mine = thread_session(server.url)
    theirs: list[GatewaySession] = []
    other = threading.Thread(target=lambda: theirs.append(thread_session(server.url)))
    other.start()
    other.join()

    assert thread_session(server.url) is mine
    assert theirs[0] is not mine
    assert thread_session(server.url + "other/") is not mine  # settings changed: a new one


def test_proxies_come_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = GatewaySession("https://gateway.example/api/")
    monkeypatch.setenv("NO_PROXY", "gateway.example")
    direct = GatewaySession("https://gateway.example/api/")

    assert proxied.proxies.get("https") == "http://proxy.example:3128"
    assert "https" not in direct.proxies
    assert not proxied.trust_env  # not looked up again on every request
