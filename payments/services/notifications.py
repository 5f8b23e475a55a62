"""The IPN inbox: store every authentic notification, apply it once, record what it did.

`notification_receive` stores and applies in one transaction; when applying
fails, that transaction is rolled back and the notification is stored again,
with outcome `error`, in a new one (the `apply_pending` sweep applies it later).
`notification_apply_safely` (sweeps, replays) relies on a savepoint instead.
`notification_apply` is also what sweeps and replays call: applying the same
notification again changes nothing.

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
from uuid import UUID

from celery.exceptions import SoftTimeLimitExceeded
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from payments import money
from payments.choices import IpnStatus
from payments.exceptions import InvalidNotification, NotificationOfAnotherShop
from payments.models import Notification, Order, OrderFlag, Payment, RejectedNotification, Shop
from payments.notification_message import NotificationMessage, parse_notification
from payments.services.inserts import insert_on_conflict
from payments.services.orders import order_flag, order_transition
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
                _apply(notification)
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


def notification_apply(*, notification: Notification, savepoint: bool = True) -> Notification:
    """Apply a stored notification to its order: one transaction, the order row locked.

    `savepoint=False` inside a caller's atomic block saves two round trips, but a
    failure then spoils the caller's whole block (payments.services.sweeps applies
    a chunk so, and again one by one if one fails).
    """
    with transaction.atomic(savepoint=savepoint):
        return _apply(notification)


def _apply(notification: Notification) -> Notification:
    """Apply inside the caller's transaction (which holds the notification's row)."""
    try:
        message = parse_notification(bytes(notification.body))
    except InvalidNotification as exc:
        return _finish(notification, Outcome.INVALID, str(exc))
    notification.transaction = message.transaction
    notification.payment_id = message.payment_id
    notification.status = message.status
    shop = notification.shop  # cached by the IPN path; one query in a sweep
    order = order_locked(
        shop=shop,
        transaction=message.transaction,
        currency=message.currency,
        payment_id=message.payment_id,
    )
    if order is None:
        if Order.objects.filter(transaction=message.transaction).exists():
            return _another_shops(notification, shop)
        return _finish(notification, Outcome.UNKNOWN_TRANSACTION, "no order has this id")
    notification.order = order
    if (message.data or "") != order.data:
        order_flag(
            order_id=order.pk, kind=Kind.DATA_MISMATCH, detail="data differs from the order's"
        )
        return _finish(notification, Outcome.FLAGGED, "data differs from the order's")
    outcome, detail = HANDLERS[message.status](order=order, message=message)
    return _finish(notification, outcome, detail)


def _another_shops(notification: Notification, shop: Shop) -> Notification:
    """A transaction of another shop's order: nothing applied, flagged on `shop`'s side only.

    No order is linked, so `shop`'s staff never see the other shop's order.
    """
    logger.warning(
        "IPN signed by shop %s for a transaction of another shop: flagged, not applied",
        shop.name,
        extra={"notification_id": notification.pk, "transaction": str(notification.transaction)},
    )
    return _finish(
        notification,
        Outcome.FLAGGED,
        "the transaction belongs to another shop: this shop's key cannot change it",
    )


def order_locked(
    *, shop: Shop, transaction: UUID, currency: str | None, payment_id: UUID
) -> Order | None:
    """`shop`'s order of `transaction`, locked, with `paid_before`: what its payments other
    than `payment_id` brought in `currency` (the rule of quotes.received_int).

    None when no order of `shop` has this transaction (another shop's is not
    found: one shop's key never touches another shop's order). The order comes
    with `shop` in hand (`order.shop`, no query).

    The one way to lock an order for `payment_apply_paid` (the IPN inbox, the
    ledger sweep), on every database: one statement on the hottest path of the
    service, the total riding along as a scalar subquery (only the order row
    is locked). Written as SQL because building the equivalent queryset cost
    more CPU than the rest of the IPN. SQLite has no FOR UPDATE: its writers
    take turns on the whole database.
    """
    order_table = connection.ops.quote_name(Order._meta.db_table)
    payment_table = connection.ops.quote_name(Payment._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    uuid_field = Order._meta.get_field("transaction")
    sql = (
        "SELECT o.*, COALESCE((SELECT SUM(CASE WHEN p.status = %s AND p.currency = %s "  # noqa: S608
        "THEN p.amount_int WHEN p.status = %s AND %s = %s THEN p.amount_valid ELSE 0 END) "
        f"FROM {payment_table} p WHERE p.order_id = o.id AND p.payment_id <> %s), 0) "
        f"AS paid_before FROM {order_table} o "
        f"WHERE o.{connection.ops.quote_name('transaction')} = %s AND o.shop_id = %s{lock}"
    )
    params = [
        Payment.Status.PAID.value,
        currency or "",
        Payment.Status.PARTIAL.value,
        currency or "",
        money.BTC,
        uuid_field.get_db_prep_value(payment_id, connection),
        uuid_field.get_db_prep_value(transaction, connection),
        shop.pk,
    ]
    order = next(iter(Order.objects.raw(sql, params)), None)
    if order is not None:
        order.shop = shop
    return order


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
    order: Order,
    message: NotificationMessage,
    fields: dict[str, Any],
    source: str = Payment.Source.IPN,
) -> tuple[Payment, bool]:
    """The Payment row of this payment_id: unique, so a duplicate never makes a second.

    A new row is inserted with `fields` (status included) in one statement;
    an existing one is returned as it is, for the caller to decide.
    """
    payment = Payment(payment_id=message.payment_id, order=order, source=source, **fields)
    row = insert_on_conflict(obj=payment, unique_field="payment_id", returning=("id",))
    if row is not None:
        payment.pk = row[0]
        return payment, True
    return Payment.objects.get(payment_id=message.payment_id), False


def _flagged(order: Order, kind: str, detail: str) -> tuple[str, str]:
    order_flag(order_id=order.pk, kind=kind, detail=detail)
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
    *, order: Order, message: NotificationMessage, source: str = Payment.Source.IPN
) -> tuple[str, str]:
    """Record a paid payment and move its order as the state table says.

    `order` comes from `order_locked` (locked, with what was paid before).

    The order becomes paid only when what its paid payments add up to covers
    it (`payment_coverage`: the price, or a fiat order's BTC quote within the
    tolerance and its window); short, it stays open and is flagged.
    """
    if not message.amount_int:
        return _invalid(order, "a paid notification with a zero amount")
    fields = _paid_fields(order, message)
    payment, created = _payment_for(order, message, fields, source)
    if payment.order_id != order.pk:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    # When the payer sent the money: a payment first seen confirming was sent then.
    sent_at = (message.paid_at or timezone.now()) if created else payment.created
    if not created:
        if payment.status == Payment.Status.PAID and payment.amount_int is not None:
            return Outcome.DUPLICATE, "payment already recorded as paid"
        for name, value in fields.items():
            setattr(payment, name, value)
        payment.save(update_fields=[*fields, "updated"])
    assert message.amount_int is not None and message.currency is not None
    if message.currency not in (order.currency, money.BTC):
        return _flagged(
            order, Kind.AMOUNT_MISMATCH, f"paid in {message.currency}, order is {order.currency}"
        )
    if order.status == S.PAID:
        if order.multipay:
            return Outcome.APPLIED, "another payment on a multipay order"
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "a second payment on a paid order")
    late = order.status in (S.EXPIRED, S.CANCELLED)
    if order.status not in (S.AWAITING_PAYMENT, S.CONFIRMING) and not late:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, f"paid while {order.status}")
    coverage = payment_coverage(
        order=order,
        paid_int=_paid_before(order) + message.amount_int,
        currency=message.currency,
        sent_at=sent_at,
    )
    if not coverage.pays:
        return _flagged(order, str(coverage.verdict), coverage.detail)
    return _order_paid(order, message, coverage, late=late)


def _order_paid(
    order: Order, message: NotificationMessage, coverage: Coverage, *, late: bool
) -> tuple[str, str]:
    was = order.status
    order_transition(
        order_id=order.pk, to=S.PAID, reason=f"IPN paid {message.payment_id}", locked=order
    )
    if late:
        order_flag(order_id=order.pk, kind=Kind.LATE, detail=f"paid after being {was}")
    if coverage.verdict == Verdict.OVERPAID:
        order_flag(order_id=order.pk, kind=Kind.OVERPAID, detail=coverage.detail)
    return Outcome.APPLIED, "order paid" + (" late" if late else "")


def _invalid(order: Order, detail: str) -> tuple[str, str]:
    """An authentic notification whose figures cannot be true: stored invalid, order flagged."""
    order_flag(order_id=order.pk, kind=Kind.INVALID_NOTIFICATION, detail=detail)
    return Outcome.INVALID, detail


def _paid_before(order: Order) -> int:
    """What the order's other payments brought in the message's currency (order_locked)."""
    paid_before = order.__dict__.get("paid_before")
    if paid_before is None:
        raise ValueError("payment_apply_paid takes an order locked by order_locked")
    return int(paid_before)


def _implied_rate(order: Order, btc_amount_int: int) -> Decimal:
    price = money.to_decimal(order.amount_int, order.currency)
    return (price / money.to_decimal(btc_amount_int, money.BTC)).quantize(Decimal("1E-12"))


def _apply_partial(*, order: Order, message: NotificationMessage) -> tuple[str, str]:
    assert message.amount_valid is not None and message.amount_pending is not None
    assert message.amount_total is not None
    if message.amount_valid + message.amount_pending != message.amount_total:
        return _invalid(
            order,
            f"partial figures do not add up: valid {message.amount_valid} + pending "
            f"{message.amount_pending} != total {message.amount_total}",
        )
    figures = {
        "amount_pending": message.amount_pending,
        "amount_valid": message.amount_valid,
        "amount_total": message.amount_total,
    }
    payment, created = _payment_for(order, message, {"status": Payment.Status.PARTIAL, **figures})
    if payment.order_id != order.pk:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    if payment.status != Payment.Status.PARTIAL:
        return Outcome.STALE, f"payment already {payment.status}"
    if not created:
        seen = (payment.amount_valid or 0, payment.amount_total or 0)
        given = (message.amount_valid or 0, message.amount_total or 0)
        if given <= seen:
            return Outcome.DUPLICATE, "no newer confirmation figures"
        for name, value in figures.items():
            setattr(payment, name, value)
        payment.save(update_fields=[*figures, "updated"])
    if order.status == S.AWAITING_PAYMENT:
        return _confirming(order, message, sent_at=payment.created)
    if order.status == S.CONFIRMING or (order.status == S.PAID and order.multipay):
        return Outcome.APPLIED, "confirmation figures updated"
    return _flagged(order, Kind.LATE, f"bitcoins arriving while the order is {order.status}")


def _confirming(
    order: Order, message: NotificationMessage, *, sent_at: datetime
) -> tuple[str, str]:
    """Confirming once the bitcoins on their way (with those paid) would pay the order."""
    on_the_way = order.payments.filter(
        status__in=(Payment.Status.PARTIAL, Payment.Status.PAID)
    ).aggregate(total=Sum(Coalesce("amount_int", "amount_total")))["total"]
    coverage = payment_coverage(
        order=order, paid_int=int(on_the_way or 0), currency=money.BTC, sent_at=sent_at
    )
    if coverage.verdict in (Verdict.UNDERPAID, Verdict.QUOTE_EXPIRED):
        return _flagged(order, str(coverage.verdict), f"confirming: {coverage.detail}")
    order_transition(
        order_id=order.pk,
        to=S.CONFIRMING,
        reason=f"IPN partial {message.payment_id}",
        locked=order,
    )
    return Outcome.APPLIED, "bitcoins confirming"


def _apply_cancelled(*, order: Order, message: NotificationMessage) -> tuple[str, str]:
    payment, _ = _payment_for(order, message, {"status": Payment.Status.CANCELLED})
    if payment.order_id != order.pk:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "payment id of another order")
    if order.status in (S.AWAITING_PAYMENT, S.CONFIRMING):
        if payment.status == Payment.Status.PARTIAL:
            payment.status = Payment.Status.CANCELLED
            payment.save(update_fields=["status", "updated"])
        order_transition(
            order_id=order.pk,
            to=S.CANCELLED,
            reason=f"IPN cancelled {message.payment_id}",
            locked=order,
        )
        return Outcome.APPLIED, "order cancelled"
    if order.status == S.CANCELLED:
        return Outcome.DUPLICATE, "order already cancelled"
    if order.status == S.PAID:
        return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "cancellation of a paid order")
    return Outcome.STALE, f"order already {order.status}"


def _apply_closed(*, order: Order, message: NotificationMessage) -> tuple[str, str]:
    return _flagged(order, Kind.UNEXPECTED_NOTIFICATION, "status 'closed' (shouldn't happen)")


class _Handler(Protocol):
    def __call__(self, *, order: Order, message: NotificationMessage) -> tuple[str, str]: ...


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
