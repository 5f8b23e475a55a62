"""POST /payments/ipn/: the gateway's notifications.

Verify before parsing (size, key, signature on the raw bytes, which may come
with a Content-Length or chunked: payments.http_body), store and apply in one
transaction (or only store, for a worker to apply: PAYMENTS_IPN_APPLY=worker,
payments.services.ipn_inbox), and answer `[OK]` only after the commit. The Rest-Key names the
shop: its secret verifies the signature, and the notification may touch
that shop's orders only. The
gateway re-sends anything not answered `[OK]` every 30 minutes, so an
authentic notification that cannot be applied is still acknowledged once
stored, and a database failure is answered 503 so that it comes back.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments.choices import RejectionReason
from payments.exceptions import (
    BodyTooLarge,
    LengthRequired,
    NotificationOfAnotherShop,
    ShopUnconfigured,
)
from payments.gateway.signing import verify
from payments.http_body import read_body
from payments.metrics import IPN_NOTIFICATIONS, IPN_REJECTED
from payments.models import Notification, Shop
from payments.notification_message import ids_as_sent
from payments.services import notification_reject_record
from payments.services.ipn_inbox import notification_accept
from payments.shops import shop_for_gateway_key, shop_gateway_credentials

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
ACK = b"[OK]"


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def _verified_shop(request: HttpRequest, body: bytes) -> tuple[Shop | None, str | None]:
    """The shop whose gateway key signed the request, or why it is not authentic.

    The shop is found by its Rest-Key (one indexed lookup, however many shops:
    payments.shops.shop_for_gateway_key) and the raw body verified with that
    shop's secret, in constant time. ShopUnconfigured when its secret cannot be read.
    """
    key = request.headers.get("Rest-Key", "")
    shop = shop_for_gateway_key(rest_key=key) if key else None
    if shop is None:
        return None, RejectionReason.UNKNOWN_KEY
    signature = request.headers.get("Rest-Sign")
    if not signature:
        return None, RejectionReason.MISSING_SIGNATURE
    if not verify(body, signature, shop_gateway_credentials(shop=shop).api_secret):
        return None, RejectionReason.BAD_SIGNATURE
    return shop, None


def _reject(request: HttpRequest, reason: str, body: bytes = b"") -> HttpResponse:
    remote_addr = request.META.get("REMOTE_ADDR")
    IPN_REJECTED.labels(reason=reason).inc()
    logger.warning(
        "IPN rejected: %s from %s",
        reason,
        remote_addr,
        extra={"reason": reason, "remote_addr": remote_addr},
    )
    try:
        notification_reject_record(reason=reason, remote_addr=remote_addr, body=body)
    except DatabaseError:
        logger.exception("could not record a rejected IPN")
    return _plain(403, "Forbidden: the notification could not be verified.\n")


@csrf_exempt  # the gateway cannot send a CSRF token; the HMAC signature authenticates it
@require_POST
def receive(request: HttpRequest) -> HttpResponse:
    try:
        body = read_body(request, limit=MAX_BODY_BYTES)
    except BodyTooLarge:
        IPN_REJECTED.labels(reason=RejectionReason.TOO_LARGE).inc()
        return _plain(413, f"Request body too large: at most {MAX_BODY_BYTES} bytes.\n")
    except LengthRequired:
        IPN_REJECTED.labels(reason=RejectionReason.LENGTH_REQUIRED).inc()
        return _plain(411, "Length Required: send the body with a Content-Length.\n")
    try:
        shop, reason = _verified_shop(request, body)
        if shop is None:
            assert reason is not None
            return _reject(request, reason, body)
        notification = notification_accept(
            shop=shop,
            body=body,
            headers=dict(request.headers),
            remote_addr=request.META.get("REMOTE_ADDR"),
        )
    except NotificationOfAnotherShop:
        return _reject(request, RejectionReason.ANOTHER_SHOP, body)
    except ShopUnconfigured as exc:
        # Authentic or not, it cannot be told: the gateway re-sends it once the secret is back.
        logger.error("IPN for a shop whose gateway secret cannot be read: %s", exc)
        return _plain(503, "Temporarily unable to verify the notification; retry later.\n")
    except DatabaseError:
        logger.exception("IPN could not be stored; answering 503 so the gateway retries")
        return _plain(503, "Temporarily unable to store the notification; retry later.\n")
    _log_received(notification, body)
    return HttpResponse(ACK, content_type="text/plain")


def _outcome(notification: Notification) -> str:
    """What the log and metric say: `stored` when a worker applies it (PAYMENTS_IPN_APPLY)."""
    if notification.times_received > 1:
        return "resent"  # the gateway's retry: applied (or to be applied) the first time
    if notification.outcome == Notification.Outcome.PENDING:
        return "stored"
    return str(notification.outcome)


def _log_received(notification: Notification, body: bytes) -> None:
    """Count and log what the notification did, with its order's and transaction's ids."""
    outcome = _outcome(notification)
    IPN_NOTIFICATIONS.labels(outcome=outcome).inc()
    transaction: object = notification.transaction
    status: str | None = notification.status
    if transaction is None:  # not parsed (resent, or stored for a worker): read the ids
        transaction, status = ids_as_sent(body)
    logger.info(
        "IPN %s %s: %s",
        status or "?",
        transaction,
        outcome,
        extra={
            "notification_id": notification.pk,
            "transaction": str(transaction) if transaction else None,
            "order_id": str(notification.order_id) if notification.order_id else None,
            "outcome": outcome,
        },
    )
