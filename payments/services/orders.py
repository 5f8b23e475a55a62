"""Orders: creation at the gateway, the one transition function, flags."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone

from payments import money, raw_sql, signals
from payments.conf import payments_settings
from payments.exceptions import (
    IdempotencyConflict,
    InvalidTransition,
    OrderCreationFailed,
    ShopInactive,
)
from payments.gateway.client import GatewayClient
from payments.gateway.errors import GatewayError, GatewayRejected, GatewayTimeout
from payments.gateway.results import OrderCreated
from payments.gateway_factory import gateway_client
from payments.models import ApiToken, IdempotencyKey, Order, OrderFlag, OrderTransition, Shop
from payments.services.quotes import quote_fields, quote_read
from payments.services.shop_events import shop_event_record, shop_events_record_many
from payments.shops import shop_default
from payments.states import OrderStatus, can_transition

logger = logging.getLogger(__name__)

STATUS_SIGNALS: dict[str, Signal] = {
    OrderStatus.PAID: signals.order_paid,
    OrderStatus.CONFIRMING: signals.order_confirming,
    OrderStatus.CANCELLED: signals.order_cancelled,
    OrderStatus.EXPIRED: signals.order_expired,
}


@dataclass(frozen=True, kw_only=True)
class NewOrder:
    """What a shop asks for; validated by the caller (API serializer, demo shop)."""

    reference: str
    amount_int: int
    currency: str
    description: str = ""
    data: str = ""
    return_success: str = ""
    return_failure: str = ""
    multipay: bool = False
    instant_only: bool = False
    email: bool = False
    autosell: bool = False

    def fingerprint(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def public_url(*, path: str) -> str:
    return f"{payments_settings.PUBLIC_BASE_URL}{path}"


def order_create(
    *,
    new: NewOrder,
    shop: Shop | None = None,
    api_token: ApiToken | None = None,
    created_by: Any = None,
    idempotency_key: str | None = None,
) -> tuple[Order, bool]:
    """Record an order of `shop` (the default shop when None), create it at the gateway
    with the shop's account, store the gateway's answer.

    Returns (order, created): created is False when an Idempotency-Key (one
    namespace per shop) gave back an earlier order without a new gateway call.
    The order row is committed before the gateway is called, so the call never
    runs inside a transaction (the sandbox may share the database) and a crash
    leaves a visible `created` order rather than nothing. ShopInactive for a
    disabled shop, ShopUnconfigured for one whose gateway secret cannot be
    read (nothing is written).
    """
    shop = shop or shop_default()
    if not shop.active:
        raise ShopInactive(f"shop {shop.name!r} is disabled: it takes no new orders")
    client = gateway_client(shop=shop)  # ShopUnconfigured now, before anything is written
    quote = None if new.currency == money.BTC else quote_read(currency=new.currency, client=client)
    ttl = shop.order_ttl_seconds or payments_settings.PAYMENTS_ORDER_TTL
    fields = {
        **vars(new),  # its flat fields (asdict would deep-copy each value)
        **quote_fields(amount_int=new.amount_int, currency=new.currency, quote=quote),
        "shop": shop,
        "api_token": api_token,
        "created_by": created_by,
        "deadline": timezone.now() + timedelta(seconds=ttl),
    }
    order, is_new = _order_claim(fields=fields, new=new, key=idempotency_key)
    if is_new:
        _order_submit(order, client)
        if order.quote_missing:
            order_flag(
                order_id=order.id,
                kind=OrderFlag.Kind.QUOTE_MISSING,
                detail=f"the gateway's BTC{new.currency} ticker could not be read: "
                "check what is paid against the price by hand",
            )
    return order, is_new


def _order_claim(*, fields: dict[str, Any], new: NewOrder, key: str | None) -> tuple[Order, bool]:
    """A new order row (of `fields`), or the one an earlier request with the same key made.

    The key's row is locked while deciding, so two requests with one key
    never both reach the gateway.
    """
    if key is None:
        # One INSERT, committed on its own: nothing to lock, no transaction to wrap it in,
        # no fingerprint to compare.
        return Order.objects.create(**fields), True
    fingerprint = new.fingerprint()
    with transaction.atomic():
        record, _ = IdempotencyKey.objects.select_for_update().get_or_create(
            shop=fields["shop"], key=key, defaults={"fingerprint": fingerprint}
        )
        if record.fingerprint != fingerprint:
            raise IdempotencyConflict("this Idempotency-Key was used with a different request")
        earlier = record.order
        if earlier is not None and earlier.status == OrderStatus.CREATED:
            running_until = earlier.created + timedelta(seconds=creation_bound_seconds())
            if timezone.now() < running_until:
                raise IdempotencyConflict(
                    "a request with this Idempotency-Key is still in progress"
                )
            earlier = _order_abandoned(earlier)  # its request died (its process was killed)
        if earlier is not None and earlier.status != OrderStatus.FAILED:
            return earlier, False
        # First use, or a retry after a failed attempt: a new attempt.
        order = Order.objects.create(**fields)
        record.order = order
        record.save(update_fields=["order"])
        return order, True


def creation_bound_seconds() -> float:
    """How long a creation's request may take at most: then it is over, whatever happened.

    Each try waits for the key's call lock, then connects and reads; a stale nonce is
    tried again (GATEWAY_NONCE_RETRIES) after at most a second; and a few seconds more
    for the database. An order still `created` after this lost its request (its process
    died): nothing else will ever move it.
    """
    one_try = (
        payments_settings.GATEWAY_CALL_LOCK_SECONDS
        + payments_settings.GATEWAY_CONNECT_TIMEOUT
        + payments_settings.GATEWAY_READ_TIMEOUT
        + 1
    )
    return (1 + payments_settings.GATEWAY_NONCE_RETRIES) * one_try + 5


def _order_abandoned(order: Order) -> Order:
    """Fail an order whose creating request died, as a creation that timed out is failed.

    The gateway may have created it (the call may have been sent): flagged
    gateway_uncertain, and the retry holding its Idempotency-Key makes a new attempt.
    """
    reason = "the request creating it ended without an answer (its process died)"
    order = _order_failed(order, reason=reason, uncertain=True)
    logger.warning(
        "order %s failed: its creation was abandoned",
        order.id,
        extra={"order_id": str(order.id), "reference": order.reference},
    )
    return order


def _order_failed(order: Order, *, reason: str, uncertain: bool) -> Order:
    """Record a creation that did not happen, in one transaction: failed, why, and flagged
    gateway_uncertain when the call may have reached the gateway."""
    with transaction.atomic():
        _created_order_transition(
            order, to=OrderStatus.FAILED, reason=reason[:255], failure_reason=reason
        )
        if uncertain:
            order_flag(
                order_id=order.id,
                kind=OrderFlag.Kind.GATEWAY_UNCERTAIN,
                detail="The gateway may have created this order; a payment for it "
                "would arrive as a notification for an unknown transaction.",
            )
    return order


def _gateway_order_create(order: Order, client: GatewayClient) -> OrderCreated:
    """merchant/order/create for `order` with its shop's `client`, with the URLs the gateway
    sends the payer back to."""
    return client.order_create(
        currency=order.currency,
        amount_int=order.amount_int,
        return_success=public_url(path=reverse("checkout-success", args=[order.id])),
        return_failure=public_url(path=reverse("checkout-failure", args=[order.id])),
        description=order.description or None,
        ipn=public_url(path=reverse("payments-ipn")),
        data=order.data or None,
        email=order.email,
        autosell=order.autosell,
        multipay=order.multipay,
        instant_only=order.instant_only,
    )


def _order_submit(order: Order, client: GatewayClient) -> None:
    """Call merchant/order/create and move the order to awaiting_payment or failed."""
    try:
        created = _gateway_order_create(order, client)
    except GatewayError as exc:
        reason = _failure_reason(exc)
        logger.warning(
            "order %s not created at the gateway: %s",
            order.id,
            reason,
            extra={"order_id": str(order.id), "reference": order.reference},
        )
        uncertain = getattr(exc, "may_have_reached_gateway", False)
        _order_failed(order, reason=reason, uncertain=uncertain)
        order.refresh_from_db()
        raise OrderCreationFailed(order, exc) from exc
    with transaction.atomic():
        _created_order_transition(
            order,
            to=OrderStatus.AWAITING_PAYMENT,
            reason="gateway accepted the order",
            transaction=created.transaction,
            payment_url=created.payment_url,
        )
    logger.info(
        "order %s created at the gateway: transaction %s",
        order.id,
        created.transaction,
        extra={"order_id": str(order.id), "transaction": str(created.transaction)},
    )


def _created_order_transition(order: Order, *, to: str, reason: str, **fields: Any) -> None:
    """Move a `created` order to `to` with `fields` (the gateway's answer, or why it failed),
    in the caller's transaction: one UPDATE, then the transition's record.

    The UPDATE locks the row, and matching only a still-`created` order proves the row in
    hand current (only its own creation moves a created order, or a retry once that
    creation cannot be running any more: `_order_claim`): no SELECT ... FOR UPDATE, no
    refresh after, and the answer and the status are written together.
    """
    _check_transition(order, to)
    now = timezone.now()
    moved = Order.objects.filter(pk=order.pk, status=OrderStatus.CREATED).update(
        status=to, updated=now, **fields
    )
    if not moved:
        raise InvalidTransition(f"order {order.pk} left `created` during its creation")
    for name, value in fields.items():
        setattr(order, name, value)
    _moves_recorded([OrderMove(order=order, from_status=order.status, to=to, reason=reason)], now)


def _failure_reason(exc: GatewayError) -> str:
    if isinstance(exc, GatewayRejected):
        return f"gateway rejected the order: {exc.message}"
    if isinstance(exc, GatewayTimeout):
        return "the gateway did not answer in time"
    return f"gateway error: {exc}"


def order_transition(*, order_id: UUID, to: str, reason: str, locked: Order | None = None) -> Order:
    """The one function that changes an order's status: lock, check the table, write, record.

    `locked` is the order row when the caller already holds it locked (SELECT
    ... FOR UPDATE in its own transaction): no second lock and no savepoint.
    Raises InvalidTransition for a change the table does not allow, before
    writing anything; the caller decides whether that is an error or a
    stale event to record.
    """
    if locked is not None:
        if locked.pk != order_id or not transaction.get_connection().in_atomic_block:
            raise ValueError("`locked` must be this order, locked in the caller's transaction")
        _check_transition(locked, to)
        with transaction.atomic(savepoint=False):
            return _transition_write(locked, to, reason)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        _check_transition(order, to)
        return _transition_write(order, to, reason)


def _check_transition(order: Order, to: str) -> None:
    if not can_transition(order.status, to):
        raise InvalidTransition(f"order {order.pk}: {order.status} -> {to} is not allowed")


def _transition_write(order: Order, to: str, reason: str) -> Order:
    move = OrderMove(order=order, from_status=order.status, to=to, reason=reason)
    order_moves_write(moves=[move])
    return order


@dataclass(frozen=True, kw_only=True)
class OrderMove:
    """A checked change of a locked order's status: `order` in hand, `from_status` what it was."""

    order: Order
    from_status: str
    to: str
    reason: str


def order_moves_write(*, moves: Sequence[OrderMove]) -> None:
    """Write moves of orders the caller holds locked, already checked against the table:
    one UPDATE per target status (no SELECT first: the rows are in hand), then their records.

    The one writer behind `order_transition` and the IPN's batches
    (payments.services.apply_batch), which move many orders per transaction.
    """
    now = timezone.now()
    targets: dict[str, list[UUID]] = {}
    for move in moves:
        targets.setdefault(move.to, []).append(move.order.pk)
    for to, ids in targets.items():
        Order.objects.filter(pk__in=ids).update(status=to, updated=now)
    _moves_recorded(moves, now)


def _moves_recorded(moves: Sequence[OrderMove], now: datetime) -> None:
    """After the UPDATEs that made `moves`: their transitions' rows (one INSERT), each
    order's shop event, and its status signal after the commit."""
    _transitions_insert(
        (move.order.pk, move.from_status, move.to, move.reason, now) for move in moves
    )
    for move in moves:
        order = move.order
        order.status, order.updated = move.to, now
        shop_event_record(order=order, event_type=f"order.{move.to}")
        signal = STATUS_SIGNALS.get(move.to)
        if signal is not None and signal.has_listeners(sender=Order):
            transaction.on_commit(partial(signal.send_robust, sender=Order, order=order))


def _transitions_insert(rows: Iterable[tuple[UUID, str, str, str, datetime]]) -> None:
    """The transitions' rows (order id, from, to, reason, when): the one writer of them."""
    raw_sql.rows_insert(
        OrderTransition, ("order", "from_status", "to_status", "reason", "created"), rows
    )


def order_flag(*, order_id: UUID, kind: str, detail: str = "") -> OrderFlag:
    """Raise a flag for a person to review; `order_flagged` is sent after commit.

    The same open flag again (a replayed notification) is not raised twice.
    """
    detail = detail[:500]
    open_flag = OrderFlag.objects.filter(
        order_id=order_id, kind=kind, detail=detail, reviewed_at__isnull=True
    ).first()
    if open_flag is not None:
        return open_flag
    flag = OrderFlag.objects.create(order_id=order_id, kind=kind, detail=detail)
    # The admin's indexed "flagged" filter; flags_mark_reviewed counts down (review.py).
    Order.objects.filter(pk=order_id).update(open_flags=F("open_flags") + 1)
    shop_event_record(
        order=flag.order,
        event_type="order.flagged",
        extra={"flag": {"kind": flag.kind, "detail": flag.detail}},
    )
    transaction.on_commit(
        partial(signals.order_flagged.send_robust, sender=Order, order=flag.order, flag=flag)
    )
    return flag


def orders_transition(
    *, order_ids: list[UUID], expected_from: str, to: str, reason: str
) -> list[UUID]:
    """`order_transition` for many orders at once (sweeps): same table, a few statements.

    The caller holds the rows locked (SELECT ... FOR UPDATE in its chunk's
    transaction). Only orders still in `expected_from` move; returns their ids.
    """
    if not can_transition(expected_from, to):
        raise InvalidTransition(f"{expected_from} -> {to} is not allowed")
    now = timezone.now()
    moved = Order.objects.filter(pk__in=order_ids, status=expected_from).update(
        status=to, updated=now
    )
    if moved == len(set(order_ids)):
        moving = list(order_ids)  # the common case: the caller's locked rows all moved
    else:
        moving = list(
            Order.objects.filter(pk__in=order_ids, status=to, updated=now).values_list(
                "pk", flat=True
            )
        )
    if not moving:
        return []
    _transitions_insert((pk, expected_from, to, reason, now) for pk in moving)
    shop_events_record_many(order_ids=moving, event_type=f"order.{to}")
    signal = STATUS_SIGNALS.get(to)
    if signal is not None and signal.has_listeners(sender=Order):
        transaction.on_commit(partial(_send_for_each, signal, moving), robust=True)
    return moving


def _send_for_each(signal: Signal, order_ids: list[UUID]) -> None:
    for order in Order.objects.filter(pk__in=order_ids).iterator(chunk_size=500):
        signal.send_robust(sender=Order, order=order)
