"""What applying notifications reads once and writes once per transaction.

Applying a notification decides against its order and that order's payments,
then writes a payment, the order's move, its transition and the
notification's outcome. Done one notification at a time that is some six
statements each; the worker applies chunks of fifty, and most of those
statements differ only in their values. So an `ApplyBatch` holds a chunk's
state (read and written in SQL where a queryset would cost more: payments.raw_sql):
`ApplyBatch.locked` locks the chunk's orders in one statement (sorted by
transaction: two batches holding the same orders lock them in one order and
never deadlock) and reads their payments (and any payment of the chunk's
payment ids) in a second. The handlers (payments.services.notifications)
decide against that state, in hand, and tell the batch what to write;
`flush` writes it with a statement or two for all: the new payments, the
changed ones, the orders' moves and transitions (order_moves_write), the
notifications' outcomes.

The request path applies a chunk of one, and the ledger sweep a credit, the
same way: one code path for every database (SQLite has no row locks; its
writers take turns on the whole database).

What reads the database between a decision and the flush must see the
decision written: a flag (order_flag, and its shop event) and a second
notification of an order with unwritten changes flush first. So each shop
event reads the database as the one notification behind it left it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import connection
from django.utils import timezone

from payments import raw_sql
from payments.exceptions import InvalidTransition
from payments.models import Notification, Order, Payment, Shop
from payments.services.orders import OrderMove, order_flag, order_moves_write
from payments.services.quotes import payments_received
from payments.states import can_transition

# What applying writes on a notification (ApplyBatch.finish).
OUTCOME_FIELDS = (
    "transaction", "payment_id", "status", "order", "outcome", "detail", "needs_review",
    "applied_at",
)  # fmt: skip


class ApplyBatch:
    """The locked orders of a chunk with their payments, and the writes decided on them."""

    def __init__(self, orders: Iterable[Order], payments: Iterable[Payment]) -> None:
        self._orders = {order.transaction: order for order in orders}
        self._payments = {payment.payment_id: payment for payment in payments}
        self._new: list[Payment] = []
        self._changed: dict[int, tuple[Payment, set[str]]] = {}
        self._moves: list[OrderMove] = []
        self._finished: list[Notification] = []
        self._unwritten: set[UUID] = set()  # orders with changes not yet flushed

    @classmethod
    def locked(cls, *, transactions: Iterable[UUID], payment_ids: Iterable[UUID]) -> ApplyBatch:
        """Lock the orders of `transactions` (whatever their shop), then read their payments
        and those of `payment_ids`: two statements, in the caller's transaction."""
        keys = sorted(set(transactions))
        if not keys:
            return cls([], [])
        orders = raw_sql.instances_read(Order, *_orders_sql(keys))
        if not orders:
            return cls([], [])  # nothing to decide against: unknown transactions
        order_ids = [order.pk for order in orders]
        payments = raw_sql.instances_read(Payment, *_payments_sql(order_ids, payment_ids))
        return cls(orders, payments)

    def order(self, *, shop: Shop, transaction: UUID) -> Order | None:
        """`shop`'s locked order of `transaction` (None when it has none: another shop's order
        is never handed out), with changes still unwritten from an earlier notification
        flushed first."""
        order = self._orders.get(transaction)
        if order is None or order.shop_id != shop.pk:
            return None
        if order.pk in self._unwritten:
            self.flush()
        order.shop = shop  # in hand: the quote and the shop events read it without a query
        return order

    def has_order(self, *, transaction: UUID) -> bool:
        """Whether any shop has an order of `transaction`."""
        return transaction in self._orders

    def payment(self, *, payment_id: UUID) -> Payment | None:
        """The payment of this id, whichever order it belongs to, as this batch knows it."""
        return self._payments.get(payment_id)

    def payment_add(self, *, payment: Payment) -> None:
        self._payments[payment.payment_id] = payment
        self._new.append(payment)
        self._unwritten.add(payment.order_id)

    def payment_change(self, *, payment: Payment, fields: Iterable[str]) -> None:
        if any(payment is new for new in self._new):
            return  # not inserted yet: its INSERT writes what it now holds
        _, changed = self._changed.setdefault(id(payment), (payment, set()))
        changed.update(fields)
        self._unwritten.add(payment.order_id)

    def paid_before(self, *, order: Order, currency: str, payment_id: UUID) -> int:
        """What the order's payments other than `payment_id` brought in `currency`."""
        return payments_received(self._payments_of(order), currency=currency, excluding=payment_id)

    def on_the_way(self, *, order: Order) -> int:
        """The bitcoins paid or confirming on the order: its paid and partial payments' amounts
        (a partial one's total, valid and pending)."""
        moving = (Payment.Status.PARTIAL, Payment.Status.PAID)
        return sum(
            (payment.amount_int if payment.amount_int is not None else payment.amount_total) or 0
            for payment in self._payments_of(order)
            if payment.status in moving
        )

    def _payments_of(self, order: Order) -> Iterable[Payment]:
        return (payment for payment in self._payments.values() if payment.order_id == order.pk)

    def move(self, *, order: Order, to: str, reason: str) -> None:
        """Move the locked `order` to `to` in hand (written at the flush). Raises
        InvalidTransition, changing nothing, for a move the state table does not allow."""
        if not can_transition(order.status, to):
            raise InvalidTransition(f"order {order.pk}: {order.status} -> {to} is not allowed")
        self._moves.append(OrderMove(order=order, from_status=order.status, to=to, reason=reason))
        order.status = to
        self._unwritten.add(order.pk)

    def flag(self, *, order: Order, kind: str, detail: str) -> None:
        """Raise a flag on `order` once what the batch decided is written (the flag's shop
        event reads the order as it now is)."""
        self.flush()
        order_flag(order_id=order.pk, kind=kind, detail=detail)

    def finish(self, *, notification: Notification, outcome: str, detail: str) -> None:
        notification.outcome = outcome
        notification.detail = detail[:500]
        notification.needs_review = outcome in (
            Notification.Outcome.FLAGGED,
            Notification.Outcome.UNKNOWN_TRANSACTION,
            Notification.Outcome.INVALID,
        )
        notification.applied_at = timezone.now()
        self._finished.append(notification)

    def flush(self) -> None:
        """Write what was decided: payments first (the moves' shop events read them)."""
        if self._new:
            Payment.objects.bulk_create(self._new)
        for payment, fields in self._changed.values():
            payment.save(update_fields=[*fields, "updated"])
        if self._moves:
            order_moves_write(moves=self._moves)
        if self._finished:
            _outcomes_write(self._finished)
        self._new, self._changed, self._moves, self._finished = [], {}, [], []
        self._unwritten.clear()


def _orders_sql(keys: list[UUID]) -> tuple[str, list[Any]]:
    """The orders of `keys`, locked in the order of their transactions (SQLite has no
    FOR UPDATE: its writers take turns on the whole database)."""
    transaction = raw_sql.column(Order, "transaction")
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = (
        f"SELECT {', '.join(raw_sql.columns(Order))} FROM {raw_sql.table(Order)} "  # noqa: S608
        f"WHERE {transaction} IN ({raw_sql.marks(len(keys))}) ORDER BY {transaction}{lock}"
    )
    return sql, [raw_sql.prep(Order, "transaction", key) for key in keys]


def _payments_sql(order_ids: list[UUID], payment_ids: Iterable[UUID]) -> tuple[str, list[Any]]:
    """The payments of `order_ids`, and those of `payment_ids` (another order's, if any)."""
    ids = sorted(set(payment_ids))
    where = f"{raw_sql.column(Payment, 'order')} IN ({raw_sql.marks(len(order_ids))})"
    if ids:
        where += f" OR {raw_sql.column(Payment, 'payment_id')} IN ({raw_sql.marks(len(ids))})"
    selected = ", ".join(raw_sql.columns(Payment))
    sql = f"SELECT {selected} FROM {raw_sql.table(Payment)} WHERE {where}"  # noqa: S608
    params = [raw_sql.prep(Payment, "order", pk) for pk in order_ids]
    return sql, params + [raw_sql.prep(Payment, "payment_id", pk) for pk in ids]


def _outcomes_write(notifications: list[Notification]) -> None:
    """Each notification's outcome: one UPDATE by primary key, sent together (executemany:
    one round trip on PostgreSQL; the ORM's bulk_update costs more CPU than applying)."""
    fields = [field for field in Notification._meta.concrete_fields if field.name in OUTCOME_FIELDS]
    assignments = ", ".join(f"{raw_sql.column(Notification, field.name)} = %s" for field in fields)
    table, pk = raw_sql.table(Notification), raw_sql.column(Notification, "id")
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608
    rows = [
        [field.get_db_prep_save(getattr(n, field.attname), connection) for field in fields] + [n.pk]
        for n in notifications
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
