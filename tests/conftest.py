"""Fixtures shared by the whole suite: a real Celery worker process and its environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from merchant.celery import ensure_broker_folders
from tests.factories import accepted_order

BASE_DIR = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the database the tests run on (the test database, once created)."""
    db: dict[str, Any] = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_env(**extra: str) -> dict[str, str]:
    """Environment for a process of the service that shares the tests' database and broker."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "VAR_DIR": str(settings.VAR_DIR),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def celery_app_on(broker_url: str | None) -> Celery:
    """The service's Celery app, or one configured like it on another broker (its routes too)."""
    from merchant.celery import app

    if broker_url is None:
        return app
    other = Celery("merchant", set_as_current=False)
    other.config_from_object("django.conf:settings", namespace="CELERY")
    # The read and write URLs: the environment's CELERY_BROKER_URL overrides broker_url.
    other.conf.broker_read_url = other.conf.broker_write_url = broker_url
    other.conf.broker_transport_options = {}
    return other


class WorkerProcess:
    """A real `celery worker` subprocess, started and stopped by the tests."""

    def __init__(
        self, name: str, log_path: Path, extra_env: dict[str, str], concurrency: int = 2
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.extra_env = extra_env
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def pool_pids(self) -> list[int]:
        """The pids of the worker's pool processes (children of the main process)."""
        assert self.process is not None
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return children

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "merchant",
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                "prefork",
                "--concurrency",
                str(self.concurrency),
                "--hostname",
                f"{self.name}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=BASE_DIR,
            env=service_env(**self.extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        # Asked over the worker's own broker (a test may give it one of its own).
        control = celery_app_on(self.extra_env.get("CELERY_BROKER_URL")).control
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.log_path}")
            replies = control.ping(timeout=0.5) or []
            if any(name.startswith(f"{self.name}@") for reply in replies for name in reply):
                return
        self.stop()
        raise RuntimeError(f"worker did not answer within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session", autouse=True)
def _fresh_queue_folder() -> None:
    """Embedded broker: start the run with an empty queue, not one left by a killed run."""
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        shutil.rmtree(Path(settings.VAR_DIR) / "celery", ignore_errors=True)
        ensure_broker_folders(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    else:
        from merchant.celery import app

        app.control.purge()  # no task left over from an earlier run reaches this run's workers


@pytest.fixture
def start_worker(transactional_db: None, tmp_path: Path) -> Iterator[Any]:
    """Start real worker processes on the test database: `start_worker("w1")`."""
    started: list[WorkerProcess] = []

    def start(name: str = "tests", concurrency: int = 2, **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(name, tmp_path / f"{name}.log", extra_env, concurrency)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def make_order(db: None) -> Callable[..., Any]:
    """Orders the gateway already accepted: tests.factories.accepted_order."""
    return accepted_order


@pytest.fixture
def live_gateway(live_server: Any, settings: Any, tmp_path: Path) -> str:
    """The service and the sandbox gateway on one live HTTP server; returns its URL.

    The live server outlives the test (same URL, same cache keys), so each test
    gets a cache of its own: the configured kind (files), in a fresh folder.
    """
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    url = live_server.url
    settings.PUBLIC_BASE_URL = url
    settings.GATEWAY_API_URL = f"{url}/sandbox/api/"
    settings.GATEWAY_PAYMENT_HOST = f"{url}/sandbox"
    return url


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The shop-event delivery tasks published, captured instead of left in the shared
    broker: a test runs them itself, as a worker would (`shop_event_deliver`)."""
    from payments import tasks

    published: list[str] = []
    monkeypatch.setattr(
        tasks.deliver_shop_event, "apply_async", lambda args, **kw: published.append(args[0])
    )
    return published
