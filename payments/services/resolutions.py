"""What staff decide about exceptional orders: accept, void, cancel, record a refund.

Each decision takes a reason, locks the order, acts through `order_transition`
(the state table decides what is allowed), appends an `OrderResolution` (the
audit trail) and records a shop event, all in one transaction. Who may decide
is the caller's check (the admin allows the reviewer role); nothing here
knows of HTTP requests.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Sum

from payments import money
from payments.exceptions import InvalidTransition, ResolutionRefused
from payments.models import Order, OrderResolution, Payment
from payments.services.orders import order_transition
from payments.services.shop_events import shop_event_record
from payments.states import OrderStatus

Action = OrderResolution.Action
S = OrderStatus

# The status each decision moves an order to, and from which statuses a person may.
_OPEN = frozenset({S.AWAITING_PAYMENT, S.CONFIRMING})
_UNPAID = _OPEN | {S.EXPIRED, S.CANCELLED}
TARGETS: dict[str, tuple[str, frozenset[str]]] = {
    Action.ACCEPT_PAID: (S.PAID, _UNPAID),
    Action.MARK_INVALID: (S.INVALID, _UNPAID),
    Action.CANCEL: (S.CANCELLED, _OPEN),
}


def order_resolve(
    *,
    order_id: UUID,
    action: str,
    user: Any,
    reason: str,
    amount_int: int | None = None,
    currency: str | None = None,
    reference: str = "",
) -> OrderResolution:
    """Apply one decision of `user` to the order; ResolutionRefused when it cannot apply.

    A refund (`action` refund) of `amount_int` of `currency` (the order's own
    unless BTC is named; the whole refundable amount when None) is recorded
    with its `reference`; it moves no status.
    """
    reason = reason.strip()
    if not reason:
        raise ResolutionRefused("a decision needs a reason")
    if action not in Action.values:
        raise ResolutionRefused(f"unknown action {action!r}")
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        resolution = OrderResolution(
            order=order, action=action, reason=reason, user=user, user_name=user.get_username()
        )
        if action == Action.REFUND:
            _refund(order, resolution, amount_int, currency or order.currency, reference)
        else:
            _move(order, resolution)
        resolution.save()
        shop_event_record(
            order=order,
            event_type="order.refunded" if action == Action.REFUND else "order.resolved",
            extra={"resolution": resolution_payload(resolution=resolution)},
        )
    return resolution


def _move(order: Order, resolution: OrderResolution) -> None:
    target, allowed_from = TARGETS[resolution.action]
    label = resolution.get_action_display()
    if order.status not in allowed_from:
        raise ResolutionRefused(f"cannot {label}: the order is {order.status}")
    try:
        order_transition(
            order_id=order.pk,
            to=target,
            reason=f"{label} by {resolution.user_name}: {resolution.reason}"[:255],
            locked=order,
        )
    except InvalidTransition as exc:  # the table and TARGETS disagree: refuse, change nothing
        raise ResolutionRefused(str(exc)) from exc


def _refund(
    order: Order, resolution: OrderResolution, amount_int: int | None, currency: str, reference: str
) -> None:
    available = refundable(order=order, currency=currency)
    if available <= 0:
        raise ResolutionRefused(f"nothing to refund in {currency}: no money of it was received")
    amount = available if amount_int is None else amount_int
    if not 0 < amount <= available:
        raise ResolutionRefused(
            f"a refund must be more than zero and at most {money.display(available, currency)}"
        )
    resolution.amount_int, resolution.currency = amount, currency
    resolution.reference = reference.strip()[:255]


def refundable(*, order: Order, currency: str) -> int:
    """What of `currency` the order received and has not been refunded yet.

    BTC: what its paid payments brought. The order's own fiat currency: its
    price, once it is paid (the payer paid the price's worth).
    """
    if currency == money.BTC:
        received = (
            order.payments.filter(status=Payment.Status.PAID, currency=money.BTC).aggregate(
                total=Sum("amount_int")
            )["total"]
            or 0
        )
    elif currency == order.currency:
        received = order.amount_int if order.status == S.PAID else 0
    else:
        raise ResolutionRefused(f"refunds are in {order.currency} or BTC, not {currency}")
    return int(received) - refunded(order=order, currency=currency)


def refunded(*, order: Order, currency: str) -> int:
    total = order.resolutions.filter(action=Action.REFUND, currency=currency).aggregate(
        total=Sum("amount_int")
    )["total"]
    return int(total or 0)


def resolution_payload(*, resolution: OrderResolution) -> dict[str, Any]:
    """A decision as the shop sees it (events, API)."""
    payload: dict[str, Any] = {
        "action": resolution.action,
        "reason": resolution.reason,
        "by": resolution.user_name,
        "created": resolution.created.isoformat(),
    }
    if resolution.amount_int is not None:
        payload.update(
            amount=money.amount_text(resolution.amount_int, resolution.currency),
            amount_int=resolution.amount_int,
            currency=resolution.currency,
            reference=resolution.reference,
        )
    return payload
