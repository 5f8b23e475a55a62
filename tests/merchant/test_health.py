"""GET /healthz reports the database, the broker and a live worker."""

from __future__ import annotations

import pytest
from django.test import Client

from merchant.celery import app as celery_app


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
def test_healthz_is_503_when_the_broker_is_unreachable(client: Client) -> None:
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    try:
        response = client.get("/healthz")
    finally:
        celery_app.conf.broker_url = original

    assert response.status_code == 503
    assert response.json()["broker"] is False


def test_healthz_refuses_other_methods(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
