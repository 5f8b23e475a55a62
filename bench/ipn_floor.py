"""The floor under any IPN view that keeps its promises: verify, store durably, answer.

`/bench/ipn-store-only/` does exactly what the issue requires before `[OK]`
may be sent, minus applying: the same key and signature checks as the IPN
view, then one `INSERT ... ON CONFLICT` of the notification (body, headers,
sender) into a copy of the inbox table with the same columns and indexes,
committed. No IPN view can be cheaper than this, so its ratio against
/bench/minimal/ bounds the IPN view's ratio from above.

The copy (`bench_ipn_floor`, PostgreSQL only) keeps the real inbox and the
benchmark's database check untouched.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from payments.choices import NotificationOutcome
from payments.gateway.signing import verify
from payments.ipn import ACK, MAX_BODY_BYTES
from payments.models import Notification

TABLE = "bench_ipn_floor"
UNSTORED = frozenset({"rest-sign", "authorization", "cookie"})


def _authentic(request: HttpRequest) -> bool:
    """The IPN view's checks, in its order: our Rest-Key, then Rest-Sign over the raw body."""
    key = request.headers.get("Rest-Key", "")
    if not key or not hmac.compare_digest(key.encode(), settings.GATEWAY_API_KEY.encode()):
        return False
    signature = request.headers.get("Rest-Sign")
    return bool(signature) and verify(request.body, signature, settings.GATEWAY_API_SECRET)


def create_table() -> None:
    """The floor's inbox: payments_notification's columns, defaults and indexes (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        inbox = Notification._meta.db_table
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {inbox} INCLUDING ALL)")


@csrf_exempt  # POSTed like the IPN view
def store_only(request: HttpRequest) -> HttpResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY_BYTES:
        return HttpResponse(b"too large", status=413, content_type="text/plain")
    if not _authentic(request):
        return HttpResponse(b"forbidden", status=403, content_type="text/plain")
    body = request.body
    headers = {k: v for k, v in request.headers.items() if k.lower() not in UNSTORED}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (body, body_sha256, headers, remote_addr, status, outcome, "
            "detail, needs_review, times_received, received_at, last_received_at) "
            "VALUES (%s, %s, %s, %s, '', %s, '', false, 1, now(), now()) "
            "ON CONFLICT (body_sha256) DO UPDATE SET "
            f"times_received = {TABLE}.times_received + 1 RETURNING id",
            [
                body,
                hashlib.sha256(body).hexdigest(),
                json.dumps(headers),
                request.META.get("REMOTE_ADDR"),
                NotificationOutcome.PENDING.value,
            ],
        )
        cursor.fetchone()
    return HttpResponse(ACK, content_type="text/plain")
