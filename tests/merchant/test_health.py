"""/livez, /readyz (and its old name /healthz): what they answer, to whom, and when 503."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from merchant import health
from merchant.heartbeat import record_beat
from payments.models import WorkerHeartbeat
from tests.conftest import service_env

READY = {"status": "ok", "database": True, "broker": True, "worker": True}
NO_WORKER = {"status": "degraded", "database": True, "broker": True, "worker": False}


@pytest.fixture
def staff_client(client: Client, django_user_model: Any) -> Client:
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    return client


def beat(hostname: str, seconds_ago: float) -> None:
    WorkerHeartbeat.objects.create(
        hostname=hostname, beat_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_livez_is_200_and_touches_no_database(client: Client) -> None:
    # No django_db mark: any query would fail the test.
    response = client.get("/livez")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_without_a_heartbeat(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == NO_WORKER


@pytest.mark.django_db
def test_a_503_is_an_answer_not_a_logged_server_error(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get("/readyz").status_code == 503

    assert not [r for r in caplog.records if r.name == "django.request"]


@pytest.mark.django_db
def test_readyz_is_200_with_a_recent_beat_and_names_no_worker_to_anonymous_callers(
    client: Client,
) -> None:
    record_beat("private-name@node-7")

    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json() == READY
    assert b"private-name" not in response.content
    assert b"node-7" not in response.content


@pytest.mark.django_db
def test_readyz_is_503_when_the_newest_beat_is_older_than_the_window(
    client: Client, settings: Any
) -> None:
    settings.HEALTH_WORKER_SEEN_SECONDS = 5
    beat("slow@node", seconds_ago=6)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == NO_WORKER


@pytest.mark.django_db
def test_readyz_shows_staff_each_worker_and_its_last_beat(
    staff_client: Client, settings: Any
) -> None:
    settings.HEALTH_WORKER_SEEN_SECONDS = 30
    beat("gone@node-1", seconds_ago=300)
    beat("alive@node-2", seconds_ago=2)

    response = staff_client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    workers = body.pop("workers")
    assert body == {**READY, "worker_seen_seconds": 30}
    assert [(w["hostname"], w["seen"]) for w in workers] == [
        ("alive@node-2", True),
        ("gone@node-1", False),
    ]
    assert 1 <= workers[0]["seconds_ago"] < 30
    assert workers[1]["seconds_ago"] >= 300
    assert workers[0]["last_beat"].startswith(str(timezone.now().year))


@pytest.mark.django_db
def test_readyz_names_no_worker_to_a_user_who_is_not_staff(
    client: Client, django_user_model: Any
) -> None:
    client.force_login(django_user_model.objects.create_user("shop"))
    record_beat("private-name@node-7")

    response = client.get("/readyz")

    assert response.json() == READY


@pytest.mark.django_db
def test_healthz_is_readyz_under_its_old_name(client: Client) -> None:
    record_beat("w@node")

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == READY


@pytest.mark.django_db
def test_readyz_is_never_cached(client: Client) -> None:
    assert "no-store" in client.get("/readyz")["Cache-Control"]


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
def test_health_endpoints_refuse_writes(client: Client, path: str) -> None:
    assert client.post(path).status_code == 405


@pytest.mark.django_db
def test_record_beat_keeps_one_row_per_worker() -> None:
    record_beat("w@node")
    first = WorkerHeartbeat.objects.get().beat_at
    record_beat("w@node")

    assert WorkerHeartbeat.objects.count() == 1
    assert WorkerHeartbeat.objects.get().beat_at > first


@pytest.mark.django_db
@pytest.mark.parametrize(("every", "checks"), [(60, 1), (0, 3)])
def test_the_broker_is_checked_at_most_once_per_period(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch, every: int, checks: int
) -> None:
    settings.HEALTH_BROKER_CHECK_SECONDS = every
    connects: list[float] = []

    def connect() -> bool:
        connects.append(time.monotonic())
        return True

    monkeypatch.setattr(health, "_broker_ok", health._BrokerCheck())
    monkeypatch.setattr(health, "_broker_connects", connect)

    statuses = [client.get("/readyz").json()["broker"] for _ in range(3)]

    assert statuses == [True, True, True]
    assert len(connects) == checks


def probe_readyz(**env: str) -> tuple[int, dict[str, Any]]:
    """GET /readyz in a process of its own: database and broker URLs are read once at start."""
    probe = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client(SERVER_NAME='localhost').get('/readyz'); "
        "print(r.status_code, r.content.decode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=service_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    status, _, body = result.stdout.strip().rpartition("\n")[2].partition(" ")
    assert status.isdigit(), result.stdout + result.stderr
    return int(status), json.loads(body)


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_the_broker_is_unreachable() -> None:
    record_beat("w@node")

    status, body = probe_readyz(CELERY_BROKER_URL="redis://127.0.0.1:9/0")  # nothing listens

    assert status == 503
    assert body == {"status": "degraded", "database": True, "broker": False, "worker": True}


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Any) -> None:
    # A database that cannot be opened; tests/faults cuts a live PostgreSQL connection.
    missing = tmp_path / "no-such-folder" / "db.sqlite3"

    status, body = probe_readyz(DATABASE_URL=f"sqlite:///{missing}")

    assert status == 503
    assert body == {"status": "degraded", "database": False, "broker": True, "worker": False}


@pytest.mark.worker
def test_readyz_sees_a_real_workers_heartbeat_until_it_stops(
    staff_client: Client, start_worker: Any, settings: Any
) -> None:
    settings.HEALTH_WORKER_SEEN_SECONDS = 3
    beat("forgotten@old-node", seconds_ago=2 * 86400)

    worker = start_worker("health", HEALTH_WORKER_BEAT_SECONDS="0.5")

    def workers() -> dict[str, Any]:
        return {w["hostname"]: w for w in staff_client.get("/readyz").json()["workers"]}

    response = staff_client.get("/readyz")
    assert response.status_code == 200, response.content
    (name,) = workers()  # a worker silent for a day is forgotten when a worker starts
    assert name.startswith("health@")
    first = workers()[name]["last_beat"]
    wait_until(lambda: workers()[name]["last_beat"] > first, 10, "the worker's next beat")

    worker.stop()
    wait_until(lambda: staff_client.get("/readyz").status_code == 503, 30, "the beats to age")
    body = staff_client.get("/readyz").json()
    assert body["worker"] is False
    assert body["workers"][0]["hostname"] == name
    assert body["workers"][0]["seen"] is False
