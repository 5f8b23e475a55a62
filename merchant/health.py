"""GET /healthz: can we reach the database and the broker, and does a worker answer?"""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from merchant.celery import app as celery_app

BROKER_TIMEOUT_SECONDS = 2.0
WORKER_PING_SECONDS = 1.5


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        return True
    except Exception:
        return False


def _workers_answering() -> list[str]:
    try:
        replies = celery_app.control.ping(timeout=WORKER_PING_SECONDS) or []
    except Exception:
        return []
    return sorted(name for reply in replies for name in reply)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    broker = _broker_ok()
    workers = _workers_answering() if broker else []
    healthy = database and broker and bool(workers)
    body = {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "broker": broker,
        "worker": bool(workers),
        "workers": workers,
    }
    return JsonResponse(body, status=200 if healthy else 503)
