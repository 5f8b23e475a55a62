"""The floor under any IPN view that keeps its promises: verify, store durably, answer.

`/bench/ipn-store-only/` does exactly what the issue requires before `[OK]`
may be sent, minus applying: the same key and signature checks as the IPN
view (the shop of the Rest-Key, found as the view finds it, and its secret),
then one `INSERT ... ON CONFLICT` of the notification (body, headers, sender,
shop) into a copy of the inbox table with the same columns and indexes,
committed. No IPN view can be cheaper than this, so its ratio against
/bench/minimal/ bounds the IPN view's ratio from above.

The copy (`bench_ipn_floor`, PostgreSQL only) keeps the real inbox and the
benchmark's database check untouched.
"""

from __future__ import annotations

import hashlib
import json

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from payments.choices import NotificationOutcome
from payments.gateway.signing import verify
from payments.ipn import ACK, MAX_BODY_BYTES
from payments.models import Notification, Shop
from payments.shops import shop_for_gateway_key, shop_gateway_credentials

TABLE = "bench_ipn_floor"
UNSTORED = frozenset({"rest-sign", "authorization", "cookie"})


def _authentic(request: HttpRequest) -> Shop | None:
    """The IPN view's checks, in its order: the Rest-Key's shop, then Rest-Sign over the raw
    body with that shop's secret."""
    key = request.headers.get("Rest-Key", "")
    shop = shop_for_gateway_key(rest_key=key) if key else None
    signature = request.headers.get("Rest-Sign")
    if shop is None or not signature:
        return None
    secret = shop_gateway_credentials(shop=shop).api_secret
    return shop if verify(request.body, signature, secret) else None


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
    shop = _authentic(request)
    if shop is None:
        return HttpResponse(b"forbidden", status=403, content_type="text/plain")
    body = request.body
    headers = {k: v for k, v in request.headers.items() if k.lower() not in UNSTORED}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (shop_id, body, body_sha256, headers, remote_addr, status, "
            "outcome, detail, needs_review, times_received, received_at, last_received_at) "
            "VALUES (%s, %s, %s, %s, %s, '', %s, '', false, 1, now(), now()) "
            "ON CONFLICT (body_sha256) DO UPDATE SET "
            f"times_received = {TABLE}.times_received + 1 RETURNING id",
            [
                shop.pk,
                body,
                hashlib.sha256(body).hexdigest(),
                json.dumps(headers),
                request.META.get("REMOTE_ADDR"),
                NotificationOutcome.PENDING.value,
            ],
        )
        cursor.fetchone()
    return HttpResponse(ACK, content_type="text/plain")
