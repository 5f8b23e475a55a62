"""HTTP sessions for the gateway client: one per thread, kept between calls.

A new requests.Session per call cost more CPU than the rest of the call:
building the session, opening a TCP (or TLS) connection, and, on every
request, scanning the environment for proxies and ~/.netrc. A session is not
safe to share between threads, so each thread keeps its own (gunicorn
gthread and Celery reuse their threads), and a process started by fork
makes new ones rather than share its parent's sockets.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

# A pooled connection idle longer than this is closed rather than reused. Servers close
# idle keep-alive connections after a delay of their own (gunicorn 2 s, nginx 75 s); a POST
# sent just as the server closes would fail with no way to tell whether it arrived, and a
# POST to the gateway is never retried blindly. Staying under the shortest delay avoids that.
MAX_IDLE_SECONDS = 1.0

_local = threading.local()


class GatewaySession(requests.Session):
    """A requests.Session that never retries, reads the environment once, drops idle connections.

    Proxies and the CA bundle come from the environment (HTTPS_PROXY, NO_PROXY,
    REQUESTS_CA_BUNDLE...) as with any session, but are resolved for the
    gateway's URL once here instead of on every request; ~/.netrc is not read
    (the gateway authenticates with Rest-Key and Rest-Sign).
    """

    def __init__(self, base_url: str, *, max_idle: float = MAX_IDLE_SECONDS) -> None:
        super().__init__()
        # requests' default is already no retry; say so, since a resent POST could pay twice.
        for prefix in ("https://", "http://"):
            self.mount(prefix, HTTPAdapter(max_retries=0))
        found = self.merge_environment_settings(base_url, {}, None, None, None)
        self.proxies, self.verify = found["proxies"], found["verify"]
        self.trust_env = False
        self.max_idle = max_idle
        self._last_used = float("-inf")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if time.monotonic() - self._last_used > self.max_idle:
            for adapter in self.adapters.values():
                adapter.close()  # closes the pooled connections; the next one is fresh
        try:
            return super().send(request, **kwargs)
        finally:
            self._last_used = time.monotonic()


def thread_session(base_url: str) -> GatewaySession:
    """This thread's session for `base_url`, made on first use (and after a fork)."""
    held: tuple[int, str, GatewaySession] | None = getattr(_local, "held", None)
    pid = os.getpid()
    if held is not None and held[0] == pid and held[1] == base_url:
        return held[2]
    if held is not None and held[0] == pid:
        held[2].close()  # another gateway URL (settings changed): its sockets are of no use
    session = GatewaySession(base_url)
    _local.held = (pid, base_url, session)
    return session
