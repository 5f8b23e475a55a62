"""/readyz with the database or the broker cut behind a TCP proxy; /livez unaffected.

The service runs in gunicorn (tests/faults/conftest.py `service`); a heartbeat row
stands for a live worker, so that only the cut dependency turns /readyz to 503,
and /readyz is 200 again once the proxy is restored.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from django.conf import settings

from merchant.heartbeat import record_beat
from tests.conftest import database_url
from tests.faults.conftest import ServiceServer, require_postgres, wait_until
from tests.faults.proxy import TcpProxy, proxied_url

READY = {"status": "ok", "database": True, "broker": True, "worker": True}


def get(server: ServiceServer, path: str) -> requests.Response:
    return requests.get(f"{server.url}{path}", timeout=10)


def ready_again(server: ServiceServer) -> bool:
    return get(server, "/readyz").status_code == 200


def assert_ready(server: ServiceServer) -> None:
    response = get(server, "/readyz")
    assert (response.status_code, response.json()) == (200, READY), server.log_text()[-2000:]


@pytest.mark.postgres
def test_readyz_is_503_while_postgres_is_cut_and_livez_stays_200(
    service: Callable[..., ServiceServer], proxies: Callable[[str, int], TcpProxy]
) -> None:
    require_postgres("the service reaches its database over TCP through a proxy")
    record_beat("w@node")
    proxy = proxies(database_url(), 5432)
    server = service(DATABASE_URL=proxied_url(database_url(), proxy))
    assert_ready(server)  # its database connection is open when PostgreSQL goes

    proxy.cut()
    down = get(server, "/readyz")
    assert (down.status_code, down.json()) == (
        503,
        {"status": "degraded", "database": False, "broker": True, "worker": False},
    )
    live = get(server, "/livez")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})

    proxy.restore()
    wait_until(lambda: ready_again(server), 20, "/readyz after PostgreSQL is back")
    assert_ready(server)


@pytest.mark.redis
def test_readyz_is_503_while_redis_is_cut_and_livez_stays_200(
    service: Callable[..., ServiceServer], proxies: Callable[[str, int], TcpProxy]
) -> None:
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        pytest.skip(f"needs a networked broker to stop (redis://), not {broker.split(':')[0]}")
    record_beat("w@node")
    proxy = proxies(broker, 6379)
    server = service(CELERY_BROKER_URL=proxied_url(broker, proxy))
    assert_ready(server)

    proxy.cut()
    # The broker is checked at most once per HEALTH_BROKER_CHECK_SECONDS (1 s) per process.
    wait_until(lambda: not ready_again(server), 10, "/readyz to see Redis gone")
    down = get(server, "/readyz")
    assert (down.status_code, down.json()) == (
        503,
        {"status": "degraded", "database": True, "broker": False, "worker": True},
    )
    assert get(server, "/livez").status_code == 200

    proxy.restore()
    wait_until(lambda: ready_again(server), 20, "/readyz after Redis is back")
    assert_ready(server)
