"""The IPN inbox: store every authentic notification, apply it once, record what it did.

`notification_receive` stores and applies in one transaction; applying runs
in a savepoint so that the stored row survives a failure to apply (the
sweep applies it later). `notification_apply` is also what sweeps and
replays call: applying the same notification again changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from payments import money
from payments.ipn_message import InvalidNotification, IpnMessage, parse_ipn
from payments.models import Notification, Order, OrderFlag, Payment, RejectedNotification
from payments.services.orders import order_flag, order_transition
from payments.states import OrderStatus

logger = logging.getLogger(__name__)

Outcome = Notification.Outcome
Kind = OrderFlag.Kind
S = OrderStatus
# Headers never stored: the signature (and anything that carries credentials).
UNSTORED_HEADERS = frozenset({"rest-sign", "authorization", "cookie"})
REJECTED_SAMPLE_CHARS = 512


def notification_receive(
    *, body: bytes, headers: dict[str, str], remote_addr: str | None
) -> Notification:
    """Store a verified notification and apply it, all committed before returning.

    The same body again only counts up `times_received` (and is applied if
    an earlier try did not get to it). Raises DatabaseError when nothing
    could be stored; the caller must then not acknowledge.
    """
    digest = hashlib.sha256(body).hexdigest()
    kept_headers = {k: v for k, v in headers.items() if k.lower() not in UNSTORED_HEADERS}
    now = timezone.now()
    with transaction.atomic():
        notification, created = Notification.objects.get_or_create(
            body_sha256=digest,
            defaults={"body": body, "headers": kept_headers, "remote_addr": remote_addr},
        )
        if not created:
            Notification.objects.filter(pk=notification.pk).update(
                times_received=F("times_received") + 1, last_received_at=now
            )
            notification = Notification.objects.select_for_update().get(pk=notification.pk)
        if notification.outcome in (Outcome.PENDING, Outcome.ERROR):
            notification_apply_safely(notification)
    return notification


def notification_apply_safely(notification: Notification) -> str:
    """Apply; a failure is recorded as outcome `error`, the stored row survives.

    notification_apply's own atomic block is the savepoint that a failure rolls back.
    """
    try:
        return notification_apply(notification=notification).outcome
    except Exception as exc:  # the stored row must survive whatever applying did
        logger.exception("applying notification %s failed", notification.pk)
        Notification.objects.filter(pk=notification.pk).update(
            outcome=Outcome.ERROR, detail=f"{type(exc).__name__}: {exc}"[:500]
        )
        return Outcome.ERROR


def notification_apply(*, notification: Notification) -> Notification:
    """Apply a stored notification to its order: one transaction, the order row locked."""
    with transaction.atomic():
        try:
            message = parse_ipn(bytes(notification.body))
        except InvalidNotification as exc:
            return _finish(notification, Outcome.INVALID, str(exc))
        notification.transaction = message.transaction
        notification.payment_id = message.payment_id
        notification.status = message.status
        order = Order.objects.select_for_update().filter(transaction=message.transaction).first()
        if order is None:
            return _finish(notification, Outcome.UNKNOWN_TRANSACTION, "no order has this id")
        notification.order = order
        if (message.data or "") != order.data:
            order_flag(
                order_id=order.pk, kind=Kind.DATA_MISMATCH, detail="data differs from the order's"
            )
            return _finish(notification, Outcome.FLAGGED, "data differs from the order's")
        outcome, detail = HANDLERS[message.status](order, message)
        return _finish(notification, outcome, detail)


def _finish(notification: Notification, outcome: str, detail: str) -> Notification:
    notification.outcome = outcome
    notification.detail = detail[:500]
    notification.needs_review = outcome in (
        Outcome.FLAGGED, Outcome.UNKNOWN_TRANSACTION, Outcome.INVALID,
    )  # fmt: skip
    notification.applied_at = timezone.now()
    notification.save(
        update_fields=[
            "transaction", "payment_id", "status", "order", "outcome", "detail",
            "needs_review", "applied_at",
        ]
    )  # fmt: skip
    return notification


def _payment_for(
    order: Order, message: IpnMessage, status: str, source: str = Payment.Source.IPN
) -> tuple[Payment, bool]:
    """The Payment row of this payment_id: unique, so a duplicate never makes a second."""
    return Payment.objects.get_or_create(
        payment_id=message.payment_id, defaults={"order": order, "status": status, "source": source}
    )


def _flagged(order: Order, kind: str, detail: str) -> tuple[str, str]:
    order_flag(order_id=order.pk, kind=kind, detail=detail)
    return Outcome.FLAGGED, detail


def payment_apply_paid(
    order: Order, message: IpnMessage, *, source: str = Payment.Source.IPN
) -> tuple[str, str]:
    """Record a paid payment and move its order as the state table says (order row locked)."""
    payment, _ = _payment_for(order, message, Payment.Status.PAID, source)
    if payment.order_id != order.pk:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    if payment.status == Payment.Status.PAID and payment.amount_int is not None:
        return Outcome.DUPLICATE, "payment already recorded as paid"
    assert message.amount_int is not None and message.currency is not None
    payment.status = Payment.Status.PAID
    payment.amount_int = message.amount_int
    payment.currency = message.currency
    payment.method = message.method or ""
    payment.paid_at = message.paid_at
    if message.currency == money.BTC and order.currency != money.BTC and message.amount_int:
        payment.implied_rate = _implied_rate(order, message.amount_int)
    payment.save()

    if message.currency not in (order.currency, money.BTC):
        return _flagged(
            order, Kind.AMOUNT_MISMATCH, f"paid in {message.currency}, order is {order.currency}"
        )
    if order.status == S.PAID:
        if order.multipay:
            return Outcome.APPLIED, "another payment on a multipay order"
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "a second payment on a paid order")
    paid, due = _paid_total(order, message.currency), order.amount_int
    if message.currency == order.currency and paid < due:
        shown = f"{money.display(paid, order.currency)} of {money.display(due, order.currency)}"
        return _flagged(order, Kind.UNDERPAID, f"paid {shown}")
    late = order.status in (S.EXPIRED, S.CANCELLED)
    if order.status not in (S.AWAITING_PAYMENT, S.CONFIRMING) and not late:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, f"paid while {order.status}")
    order_transition(order_id=order.pk, to=S.PAID, reason=f"IPN paid {message.payment_id}")
    if late:
        order_flag(order_id=order.pk, kind=Kind.LATE, detail=f"paid after being {order.status}")
    if message.currency == order.currency and paid > due:
        over = money.display(paid - due, order.currency)
        order_flag(order_id=order.pk, kind=Kind.OVERPAID, detail=f"paid {over} too much")
    return Outcome.APPLIED, "order paid" + (" late" if late else "")


def _implied_rate(order: Order, btc_amount_int: int) -> Decimal:
    price = money.to_decimal(order.amount_int, order.currency)
    return (price / money.to_decimal(btc_amount_int, money.BTC)).quantize(Decimal("1E-12"))


def _paid_total(order: Order, currency: str) -> int:
    total = order.payments.filter(status=Payment.Status.PAID, currency=currency).aggregate(
        total=Sum("amount_int")
    )["total"]
    return int(total or 0)


def _apply_partial(order: Order, message: IpnMessage) -> tuple[str, str]:
    payment, created = _payment_for(order, message, Payment.Status.PARTIAL)
    if payment.order_id != order.pk:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    if payment.status != Payment.Status.PARTIAL:
        return Outcome.STALE, f"payment already {payment.status}"
    seen = (payment.amount_valid or 0, payment.amount_total or 0)
    given = (message.amount_valid or 0, message.amount_total or 0)
    if not created and given <= seen:
        return Outcome.DUPLICATE, "no newer confirmation figures"
    payment.amount_pending = message.amount_pending
    payment.amount_valid = message.amount_valid
    payment.amount_total = message.amount_total
    payment.save()
    if order.status == S.AWAITING_PAYMENT:
        order_transition(
            order_id=order.pk, to=S.CONFIRMING, reason=f"IPN partial {message.payment_id}"
        )
        return Outcome.APPLIED, "bitcoins confirming"
    if order.status == S.CONFIRMING or (order.status == S.PAID and order.multipay):
        return Outcome.APPLIED, "confirmation figures updated"
    return _flagged(order, Kind.LATE, f"bitcoins arriving while the order is {order.status}")


def _apply_cancelled(order: Order, message: IpnMessage) -> tuple[str, str]:
    payment, _ = _payment_for(order, message, Payment.Status.CANCELLED)
    if payment.order_id != order.pk:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    if order.status in (S.AWAITING_PAYMENT, S.CONFIRMING):
        if payment.status == Payment.Status.PARTIAL:
            payment.status = Payment.Status.CANCELLED
            payment.save(update_fields=["status", "updated"])
        order_transition(
            order_id=order.pk, to=S.CANCELLED, reason=f"IPN cancelled {message.payment_id}"
        )
        return Outcome.APPLIED, "order cancelled"
    if order.status == S.CANCELLED:
        return Outcome.DUPLICATE, "order already cancelled"
    if order.status == S.PAID:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "cancellation of a paid order")
    return Outcome.STALE, f"order already {order.status}"


def _apply_closed(order: Order, message: IpnMessage) -> tuple[str, str]:
    return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "status 'closed' (shouldn't happen)")


# What each status does to its (locked) order; the IPN parser admits only these.
HANDLERS: dict[str, Callable[[Order, IpnMessage], tuple[str, str]]] = {
    "paid": payment_apply_paid,
    "partial": _apply_partial,
    "cancelled": _apply_cancelled,
    "closed": _apply_closed,
}


def notification_reject_record(*, reason: str, remote_addr: str | None, body: bytes) -> None:
    """Count a request that failed verification: one row per minute, reason and sender."""
    now = timezone.now()
    window = now.replace(second=0, microsecond=0)
    addr = remote_addr or ""
    counted = RejectedNotification.objects.filter(
        window_start=window, reason=reason, remote_addr=addr
    ).update(count=F("count") + 1, last_seen=now)
    if counted:
        return
    try:
        with transaction.atomic():
            RejectedNotification.objects.create(
                window_start=window,
                reason=reason,
                remote_addr=addr,
                sample=body[:REJECTED_SAMPLE_CHARS].decode("utf-8", errors="replace"),
                last_seen=now,
            )
    except IntegrityError:  # another request of the same burst created it first
        RejectedNotification.objects.filter(
            window_start=window, reason=reason, remote_addr=addr
        ).update(count=F("count") + 1, last_seen=now)
