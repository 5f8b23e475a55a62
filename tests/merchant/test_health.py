"""GET /healthz reports the database, the broker and a live worker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.test import Client

from tests.conftest import service_env


@pytest.mark.django_db(transaction=True)
def test_healthz_is_503_without_a_worker(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["database"] is True
    assert body["broker"] is True
    assert body["worker"] is False
    assert body["status"] == "degraded"


@pytest.mark.worker
def test_healthz_is_200_with_a_live_worker(client: Client, start_worker) -> None:
    start_worker("health")

    response = client.get("/healthz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "status": "ok",
        "database": True,
        "broker": True,
        "worker": True,
        "workers": body["workers"],
    }
    assert any(name.startswith("health@") for name in body["workers"])


@pytest.mark.django_db(transaction=True)
def test_healthz_is_503_when_the_broker_is_unreachable() -> None:
    # A process of its own: the broker URL is read once, as in production.
    probe = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client(SERVER_NAME='localhost').get('/healthz'); "
        "print(r.status_code, r.content.decode())"
    )
    env = service_env(CELERY_BROKER_URL="redis://127.0.0.1:9/0")  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )

    status, _, body = result.stdout.strip().rpartition("\n")[2].partition(" ")
    assert status == "503", result.stdout + result.stderr
    assert json.loads(body) == {
        "status": "degraded",
        "database": True,
        "broker": False,
        "worker": False,
        "workers": [],
    }


def test_healthz_refuses_other_methods(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
