"""The IPN inbox: store every authentic notification, apply it once, record what it did.

`notification_receive` stores and applies in one transaction; when applying
fails, that transaction is rolled back and the notification is stored again,
with outcome `error`, in a new one (the `apply_pending` sweep applies it later).
`notification_apply_safely` (sweeps, replays) relies on a savepoint instead.
`notifications_apply` applies one or a chunk of them as one batch
(payments.services.apply_batch): the request, the sweeps and the worker call it.
Applying the same notification again changes nothing.

A notification belongs to the shop whose gateway key signed it, and applying
it touches that shop's orders and payments only: a transaction of another
shop's order is flagged on the notification (with no order), never applied.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from celery.exceptions import SoftTimeLimitExceeded
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from payments import money
from payments.choices import IpnStatus
from payments.exceptions import InvalidNotification, NotificationOfAnotherShop
from payments.models import Notification, Order, OrderFlag, Payment, RejectedNotification, Shop
from payments.notification_message import NotificationMessage, parse_notification
from payments.services.apply_batch import ApplyBatch
from payments.services.inserts import insert_on_conflict
from payments.services.quotes import Coverage, Verdict, payment_coverage
from payments.states import OrderStatus

logger = logging.getLogger(__name__)

Outcome = Notification.Outcome
Kind = OrderFlag.Kind
S = OrderStatus
# Headers never stored: the signature (and anything that carries credentials).
UNSTORED_HEADERS = frozenset({"rest-sign", "authorization", "cookie"})
REJECTED_SAMPLE_CHARS = 512


def notification_receive(
    *, shop: Shop, body: bytes, headers: dict[str, str], remote_addr: str | None
) -> Notification:
    """Store a notification verified with `shop`'s key and apply it, all committed before
    returning.

    The same body again only counts up `times_received` (and is applied if
    an earlier try did not get to it). Raises DatabaseError when nothing
    could be stored, or when the database failed in a way worth retrying
    (down, locked): nothing is then written and the caller must not
    acknowledge. A failure to apply (a bug) rolls back what applying did
    and stores the notification with outcome `error` for a sweep to retry.
    NotificationOfAnotherShop when the same body is stored for another shop
    (nothing is written).
    """
    received = _Received(shop, body, headers, remote_addr)
    try:
        with transaction.atomic():
            notification = _notification_store(received)
            if notification.outcome in (Outcome.PENDING, Outcome.ERROR):
                notifications_apply(notifications=[notification])
            return notification
    except (OperationalError, InterfaceError, NotificationOfAnotherShop):
        raise  # nothing was written (transient: the gateway's retry will bring it back)
    except Exception as exc:  # the notification must be kept whatever applying did
        logger.exception("applying a notification failed; storing it for a sweep")
        with transaction.atomic():
            notification = _notification_store(received)
            if notification.outcome not in (Outcome.PENDING, Outcome.ERROR):
                return notification  # a concurrent receipt applied it meanwhile
            return _record_error(notification, exc)


def notification_store(
    *, shop: Shop, body: bytes, headers: dict[str, str], remote_addr: str | None
) -> Notification:
    """Store a notification verified with `shop`'s key, committed before returning, without
    applying it (PAYMENTS_IPN_APPLY=worker: a worker applies it; payments.services.ipn_inbox).

    New, it is stored `pending`; the same body again only counts up
    `times_received`. Raises as `notification_receive` (nothing written).
    One statement: in autocommit it is its own transaction, committed when it
    returns (BEGIN and COMMIT would be two more round trips); inside a caller's
    atomic block (ATOMIC_REQUESTS) it commits with that block, before the answer.
    """
    return _notification_store(_Received(shop, body, headers, remote_addr))


class _Received:
    """One verified request, as it is stored."""

    def __init__(
        self, shop: Shop, body: bytes, headers: dict[str, str], remote_addr: str | None
    ) -> None:
        self.shop = shop
        self.body = body
        self.digest = hashlib.sha256(body).hexdigest()
        self.headers = {k: v for k, v in headers.items() if k.lower() not in UNSTORED_HEADERS}
        self.remote_addr = remote_addr


def _notification_store(received: _Received) -> Notification:
    """Insert the notification, or count another receipt of it: one statement, row locked.

    A concurrent receipt of the same body waits on the row until the first
    commits, then sees its outcome, so one notification is applied once (in
    worker mode the applying takes the row's lock: payments.services.ipn_inbox). The
    same body stored for another shop is left alone: NotificationOfAnotherShop.
    """
    now = timezone.now()
    notification = Notification(
        shop=received.shop,  # kept on the instance: applying reads it without a query
        body=received.body,
        body_sha256=received.digest,
        headers=received.headers,
        remote_addr=received.remote_addr,
        received_at=now,
        last_received_at=now,
    )
    table = connection.ops.quote_name(Notification._meta.db_table)
    row = insert_on_conflict(
        obj=notification,
        unique_field="body_sha256",
        on_conflict=(
            f"DO UPDATE SET times_received = {table}.times_received + 1, "
            "last_received_at = EXCLUDED.last_received_at "
            f"WHERE {table}.shop_id = EXCLUDED.shop_id"
        ),
        returning=("id", "outcome", "times_received"),
    )
    if row is None:  # the row is another shop's: the WHERE of DO UPDATE left it alone
        raise NotificationOfAnotherShop(
            f"shop {received.shop.name!r} sent a notification stored for another shop"
        )
    notification.pk, notification.outcome, notification.times_received = row
    return notification


def notification_apply_safely(*, notification: Notification) -> str:
    """Apply; a failure is recorded as outcome `error`, the stored row survives.

    notification_apply's own atomic block is the savepoint that a failure rolls back.
    """
    try:
        return notification_apply(notification=notification).outcome
    except SoftTimeLimitExceeded:
        raise  # the task's time is up, not this notification's fault: it stays pending
    except Exception as exc:  # the stored row must survive whatever applying did
        logger.exception(
            "applying notification %s failed",
            notification.pk,
            extra={
                "notification_id": notification.pk,
                "transaction": str(notification.transaction or "") or None,
                "order_id": str(notification.order_id or "") or None,
            },
        )
        return _record_error(notification, exc).outcome


def _record_error(notification: Notification, exc: Exception) -> Notification:
    """Outcome `error`, naming the exception; not applied, so a sweep tries it again."""
    notification.outcome = Outcome.ERROR
    notification.detail = f"{type(exc).__name__}: {exc}"[:500]
    Notification.objects.filter(pk=notification.pk).update(
        outcome=notification.outcome, detail=notification.detail
    )
    return notification


def notification_apply(*, notification: Notification) -> Notification:
    """Apply a stored notification to its order in a transaction (a savepoint inside the
    caller's): a batch of one (notifications_apply)."""
    with transaction.atomic():
        notifications_apply(notifications=[notification])
        return notification


def notifications_apply(*, notifications: list[Notification]) -> list[str]:
    """Apply stored notifications in the caller's transaction (which holds their rows); their
    outcomes, in their order.

    One ApplyBatch for all: their orders locked and their payments read in two
    statements, each notification decided in turn against that state (a later
    one of the same order sees what an earlier one did), the writes made
    together (payments.services.apply_batch). Each notification's shop is
    read from `notification.shop` (in hand on the IPN path, one query for a
    sweep's chunk).
    """
    parsed = [_parsed(notification) for notification in notifications]
    messages = [message for message in parsed if isinstance(message, NotificationMessage)]
    batch = ApplyBatch.locked(
        transactions=(message.transaction for message in messages),
        payment_ids=(message.payment_id for message in messages),
    )
    for notification, message in zip(notifications, parsed, strict=True):
        if isinstance(message, NotificationMessage):
            _apply(notification, message, batch)
        else:
            batch.finish(notification=notification, outcome=Outcome.INVALID, detail=message)
    batch.flush()
    return [notification.outcome for notification in notifications]


def _parsed(notification: Notification) -> NotificationMessage | str:
    """The notification's message, or why it cannot be read."""
    try:
        return parse_notification(bytes(notification.body))
    except InvalidNotification as exc:
        return str(exc)


def _apply(notification: Notification, message: NotificationMessage, batch: ApplyBatch) -> None:
    notification.transaction = message.transaction
    notification.payment_id = message.payment_id
    notification.status = message.status
    shop = notification.shop  # cached by the IPN path; one query in a sweep
    order = batch.order(shop=shop, transaction=message.transaction)
    if order is None:
        if batch.has_order(transaction=message.transaction):
            return _another_shops(notification, shop, batch)
        batch.finish(
            notification=notification,
            outcome=Outcome.UNKNOWN_TRANSACTION,
            detail="no order has this id",
        )
        return None
    notification.order = order
    if (message.data or "") != order.data:
        detail = "data differs from the order's"
        outcome, detail = _flagged(batch, order, Kind.DATA_MISMATCH, detail)
    else:
        outcome, detail = HANDLERS[message.status](batch=batch, order=order, message=message)
    batch.finish(notification=notification, outcome=outcome, detail=detail)
    return None


def _another_shops(notification: Notification, shop: Shop, batch: ApplyBatch) -> None:
    """A transaction of another shop's order: nothing applied, flagged on `shop`'s side only.

    No order is linked, so `shop`'s staff never see the other shop's order.
    """
    logger.warning(
        "IPN signed by shop %s for a transaction of another shop: flagged, not applied",
        shop.name,
        extra={"notification_id": notification.pk, "transaction": str(notification.transaction)},
    )
    batch.finish(
        notification=notification,
        outcome=Outcome.FLAGGED,
        detail="the transaction belongs to another shop: this shop's key cannot change it",
    )


def _payment_for(
    batch: ApplyBatch,
    order: Order,
    message: NotificationMessage,
    fields: dict[str, Any],
    source: str = Payment.Source.IPN,
) -> tuple[Payment, bool]:
    """The Payment of this payment_id (whichever order it is of), or a new one with `fields`
    (status included) for the batch to insert. Unique: a duplicate never makes a second."""
    payment = batch.payment(payment_id=message.payment_id)
    if payment is not None:
        return payment, False
    payment = Payment(payment_id=message.payment_id, order=order, source=source, **fields)
    batch.payment_add(payment=payment)
    return payment, True


def _payment_update(batch: ApplyBatch, payment: Payment, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(payment, name, value)
    batch.payment_change(payment=payment, fields=fields)


def _flagged(batch: ApplyBatch, order: Order, kind: str, detail: str) -> tuple[str, str]:
    batch.flag(order=order, kind=kind, detail=detail)
    return Outcome.FLAGGED, detail


def _paid_fields(order: Order, message: NotificationMessage) -> dict[str, Any]:
    assert message.amount_int is not None and message.currency is not None
    fields: dict[str, Any] = {
        "status": Payment.Status.PAID,
        "amount_int": message.amount_int,
        "currency": message.currency,
        "method": message.method or "",
        "paid_at": message.paid_at,
    }
    if message.currency == money.BTC and order.currency != money.BTC and message.amount_int:
        fields["implied_rate"] = _implied_rate(order, message.amount_int)
    return fields


def payment_apply_paid(
    *,
    batch: ApplyBatch,
    order: Order,
    message: NotificationMessage,
    source: str = Payment.Source.IPN,
) -> tuple[str, str]:
    """Record a paid payment and move its order as the state table says.

    `order` is `batch`'s (locked, its payments read). The order becomes paid
    only when what its paid payments add up to covers it (`payment_coverage`:
    the price, or a fiat order's BTC quote within the tolerance and its
    window); short, it stays open and is flagged.
    """
    if not message.amount_int:
        return _invalid(batch, order, "a paid notification with a zero amount")
    fields = _paid_fields(order, message)
    payment, created = _payment_for(batch, order, message, fields, source)
    if payment.order_id != order.pk:
        return _flagged(batch, order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    # When the payer sent the money: a payment first seen confirming was sent then.
    sent_at = (message.paid_at or timezone.now()) if created else payment.created
    if not created:
        if payment.status == Payment.Status.PAID and payment.amount_int is not None:
            return Outcome.DUPLICATE, "payment already recorded as paid"
        _payment_update(batch, payment, fields)
    assert message.amount_int is not None and message.currency is not None
    if message.currency not in (order.currency, money.BTC):
        detail = f"paid in {message.currency}, order is {order.currency}"
        return _flagged(batch, order, Kind.AMOUNT_MISMATCH, detail)
    if order.status == S.PAID:
        if order.multipay:
            return Outcome.APPLIED, "another payment on a multipay order"
        detail = "a second payment on a paid order"
        return _flagged(batch, order, Kind.UNEXPECTED_NOTIFICATION, detail)
    late = order.status in (S.EXPIRED, S.CANCELLED)
    if order.status not in (S.AWAITING_PAYMENT, S.CONFIRMING) and not late:
        return _flagged(batch, order, Kind.UNEXPECTED_NOTIFICATION, f"paid while {order.status}")
    paid_before = batch.paid_before(
        order=order, currency=message.currency, payment_id=message.payment_id
    )
    coverage = payment_coverage(
        order=order,
        paid_int=paid_before + message.amount_int,
        currency=message.currency,
        sent_at=sent_at,
    )
    if not coverage.pays:
        return _flagged(batch, order, str(coverage.verdict), coverage.detail)
    return _order_paid(batch, order, message, coverage, late=late)


def _order_paid(
    batch: ApplyBatch,
    order: Order,
    message: NotificationMessage,
    coverage: Coverage,
    *,
    late: bool,
) -> tuple[str, str]:
    was = order.status
    batch.move(order=order, to=S.PAID, reason=f"IPN paid {message.payment_id}")
    if late:
        batch.flag(order=order, kind=Kind.LATE, detail=f"paid after being {was}")
    if coverage.verdict == Verdict.OVERPAID:
        batch.flag(order=order, kind=Kind.OVERPAID, detail=coverage.detail)
    return Outcome.APPLIED, "order paid" + (" late" if late else "")


def _invalid(batch: ApplyBatch, order: Order, detail: str) -> tuple[str, str]:
    """An authentic notification whose figures cannot be true: stored invalid, order flagged."""
    batch.flag(order=order, kind=Kind.INVALID_NOTIFICATION, detail=detail)
    return Outcome.INVALID, detail


def _implied_rate(order: Order, btc_amount_int: int) -> Decimal:
    price = money.to_decimal(order.amount_int, order.currency)
    return (price / money.to_decimal(btc_amount_int, money.BTC)).quantize(Decimal("1E-12"))


def _apply_partial(
    *, batch: ApplyBatch, order: Order, message: NotificationMessage
) -> tuple[str, str]:
    assert message.amount_valid is not None and message.amount_pending is not None
    assert message.amount_total is not None
    if message.amount_valid + message.amount_pending != message.amount_total:
        return _invalid(
            batch,
            order,
            f"partial figures do not add up: valid {message.amount_valid} + pending "
            f"{message.amount_pending} != total {message.amount_total}",
        )
    figures = {
        "amount_pending": message.amount_pending,
        "amount_valid": message.amount_valid,
        "amount_total": message.amount_total,
    }
    partial = {"status": Payment.Status.PARTIAL, **figures}
    payment, created = _payment_for(batch, order, message, partial)
    if payment.order_id != order.pk:
        return _flagged(batch, order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    if payment.status != Payment.Status.PARTIAL:
        return Outcome.STALE, f"payment already {payment.status}"
    if not created:
        seen = (payment.amount_valid or 0, payment.amount_total or 0)
        given = (message.amount_valid or 0, message.amount_total or 0)
        if given <= seen:
            return Outcome.DUPLICATE, "no newer confirmation figures"
        _payment_update(batch, payment, figures)
    if order.status == S.AWAITING_PAYMENT:
        return _confirming(batch, order, message, sent_at=payment.created)
    if order.status == S.CONFIRMING or (order.status == S.PAID and order.multipay):
        return Outcome.APPLIED, "confirmation figures updated"
    detail = f"bitcoins arriving while the order is {order.status}"
    return _flagged(batch, order, Kind.LATE, detail)


def _confirming(
    batch: ApplyBatch, order: Order, message: NotificationMessage, *, sent_at: datetime
) -> tuple[str, str]:
    """Confirming once the bitcoins on their way (with those paid) would pay the order."""
    coverage = payment_coverage(
        order=order, paid_int=batch.on_the_way(order=order), currency=money.BTC, sent_at=sent_at
    )
    if coverage.verdict in (Verdict.UNDERPAID, Verdict.QUOTE_EXPIRED):
        return _flagged(batch, order, str(coverage.verdict), f"confirming: {coverage.detail}")
    batch.move(order=order, to=S.CONFIRMING, reason=f"IPN partial {message.payment_id}")
    return Outcome.APPLIED, "bitcoins confirming"


def _apply_cancelled(
    *, batch: ApplyBatch, order: Order, message: NotificationMessage
) -> tuple[str, str]:
    payment, _ = _payment_for(batch, order, message, {"status": Payment.Status.CANCELLED})
    if payment.order_id != order.pk:
        return _flagged(batch, order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    if order.status in (S.AWAITING_PAYMENT, S.CONFIRMING):
        if payment.status == Payment.Status.PARTIAL:
            _payment_update(batch, payment, {"status": Payment.Status.CANCELLED})
        batch.move(order=order, to=S.CANCELLED, reason=f"IPN cancelled {message.payment_id}")
        return Outcome.APPLIED, "order cancelled"
    if order.status == S.CANCELLED:
        return Outcome.DUPLICATE, "order already cancelled"
    if order.status == S.PAID:
        detail = "cancellation of a paid order"
        return _flagged(batch, order, Kind.UNEXPECTED_NOTIFICATION, detail)
    return Outcome.STALE, f"order already {order.status}"


def _apply_closed(
    *, batch: ApplyBatch, order: Order, message: NotificationMessage
) -> tuple[str, str]:
    detail = "status 'closed' (shouldn't happen)"
    return _flagged(batch, order, Kind.UNEXPECTED_NOTIFICATION, detail)


class _Handler(Protocol):
    def __call__(
        self, *, batch: ApplyBatch, order: Order, message: NotificationMessage
    ) -> tuple[str, str]: ...


# What each status does to its (locked) order; the IPN parser admits only these.
HANDLERS: dict[str, _Handler] = {
    IpnStatus.PAID: payment_apply_paid,
    IpnStatus.PARTIAL: _apply_partial,
    IpnStatus.CANCELLED: _apply_cancelled,
    IpnStatus.CLOSED: _apply_closed,
}


def _readable_sample(body: bytes) -> str:
    """The start of a rejected body as text any database can store (PostgreSQL refuses NUL)."""
    text = body[:REJECTED_SAMPLE_CHARS].decode("utf-8", errors="replace")
    return text.replace("\x00", "\ufffd")


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
                sample=_readable_sample(body),
                last_seen=now,
            )
    except IntegrityError:  # another request of the same burst created it first
        RejectedNotification.objects.filter(
            window_start=window, reason=reason, remote_addr=addr
        ).update(count=F("count") + 1, last_seen=now)
