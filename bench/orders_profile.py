"""Where one order creation's CPU goes: cProfile of POST /api/orders/ and of the floor.

`python -m bench.orders_profile [N [DIR]]` (N orders of each, 300 by default; DIR gets
the .prof files) prepares the bench's database and a sandbox server as `orders_cpu`
does, then posts N orders through the Django test client in this process
(DJANGO_DEBUG=0, PostgreSQL), under cProfile, to /bench/orders-floor/ then to
/api/orders/. For each it prints the CPU per request, the SQL statements of one
request, the functions with the most own time and the heaviest calls. The profiler
counts CPU time, not wall time: the wait for the gateway is not ours. Its own
overhead inflates every figure some 2.5 times: compare the two views, not runs.
Not part of `python -m bench`: a tool to find what to cut.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from typing import Any

from bench.orders_cpu import FLOOR, SANDBOX, _api_token
from bench.servers import HOST, Infrastructure, log

SERVICE_URL = f"http://{HOST}:8000"  # PUBLIC_BASE_URL here: the return URLs' host


def _body(index: int) -> bytes:
    from bench.orders_cpu import _order_body

    class Service:
        url = SERVICE_URL

    return _order_body(Service, index)  # type: ignore[arg-type]


def _profile(client: Any, path: str, n: int, first: int, dump: str) -> None:
    from bench.common import counting_queries

    def send(index: int) -> None:
        response = client.post(path, _body(index), content_type="application/json")
        assert response.status_code == 201, (response.status_code, response.content[:300])

    for index in range(first, first + 20):  # warm: imports, URL caches, the kept session
        send(index)
    with counting_queries() as count:
        send(first + 20)
    profiler = cProfile.Profile(time.process_time)
    began = time.process_time()
    profiler.enable()
    for index in range(first + 21, first + 21 + n):
        send(index)
    profiler.disable()
    cpu_ms = (time.process_time() - began) * 1000 / n
    if dump:
        profiler.dump_stats(f"{dump}/{path.strip('/').replace('/', '_')}.prof")
    print(f"\n===== {path}: {cpu_ms:.2f} ms CPU per request (profiled) =====")
    print(f"statements: {count.summary()}")
    for sql in count.statements:
        print(f"  {sql[:160]}")
    for key, limit in (("tottime", 30), ("cumulative", 60)):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(limit)
        print(out.getvalue())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    dump = sys.argv[2] if len(sys.argv) > 2 else ""
    with Infrastructure() as infra:
        from django.test import Client, override_settings
        from django.urls import reverse

        from sandbox.accounts import ensure_configured_account

        token = _api_token()
        ensure_configured_account()
        sandbox = infra.start_server("sandbox", SANDBOX, SANDBOX_ENABLED="1")
        client = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Token {token}")
        gateway = {
            "GATEWAY_API_URL": f"{sandbox.url}/sandbox/api/",
            "GATEWAY_PAYMENT_HOST": f"{sandbox.url}/sandbox",
            "PUBLIC_BASE_URL": SERVICE_URL,
        }
        log(f"profiling {n} requests of each")
        with override_settings(**gateway):
            _profile(client, FLOOR, n, 0, dump)
            _profile(client, reverse("api-orders"), n, 100_000, dump)
        for server in list(infra.servers):
            infra.stop_server(server)


if __name__ == "__main__":
    main()
