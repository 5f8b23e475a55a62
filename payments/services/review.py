"""What staff do from the review admin: mark flags reviewed, reconcile orders, replay notifications.

Each function takes ids and keyword-only arguments, refuses more than
`MAX_SELECTED` rows at once (an admin action must stay a short request), and
does its work through the services the IPN view and the sweeps use, so an
action does nothing the service would not do on its own. Nothing here knows
of HTTP requests; the admin (payments/admin/) translates and calls one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from payments.exceptions import CommentRequired, InvalidNotification, TooManySelected
from payments.models import FlagReview, Notification, Order, OrderFlag
from payments.notification_message import parse_notification
from payments.services.orders import orders_transition
from payments.services.sweeps import notifications_apply_pending
from payments.states import OrderStatus

MAX_SELECTED = 500
# Notifications never applied carry no transaction until parsed: at most this many
# such bodies are read to find those of the chosen orders (the sweep normally
# leaves none older than a minute).
UNPARSED_SCAN_LIMIT = 2000

Outcome = Notification.Outcome


def _bounded(ids: Iterable[Any]) -> list[Any]:
    unique = sorted(set(ids), key=str)
    if len(unique) > MAX_SELECTED:
        raise TooManySelected(f"at most {MAX_SELECTED} at once; {len(unique)} were chosen")
    return unique


def flags_mark_reviewed(*, flag_ids: Iterable[int], user: Any, comment: str) -> list[int]:
    """Mark open flags reviewed by `user` with `comment`; returns the ids it marked.

    Writes the flag's `reviewed_at`, `reviewed_by` and `review_comment`, one
    FlagReview row per flag (the audit trail), and recounts `Order.open_flags`
    of the flags' orders, all in one transaction. Flags already reviewed are
    left as they are (their first review stands) and not returned. The orders
    are locked first, in the order the IPN path locks them (order, then
    flags), so a flag raised concurrently is either counted here or counted
    up after this commits.
    """
    comment = comment.strip()
    if not comment:
        raise CommentRequired("a review needs a comment")
    ids = _bounded(flag_ids)
    now = timezone.now()
    with transaction.atomic():
        order_ids = sorted(
            set(
                OrderFlag.objects.filter(pk__in=ids, reviewed_at__isnull=True).values_list(
                    "order_id", flat=True
                )
            ),
            key=str,
        )
        if not order_ids:
            return []
        list(Order.objects.select_for_update().filter(pk__in=order_ids).values_list("pk"))
        flags = list(
            OrderFlag.objects.select_for_update()
            .filter(pk__in=ids, reviewed_at__isnull=True)
            .order_by("pk")
        )
        marked = [flag.pk for flag in flags]
        OrderFlag.objects.filter(pk__in=marked).update(
            reviewed_at=now, reviewed_by=user, review_comment=comment
        )
        FlagReview.objects.bulk_create(
            FlagReview(
                flag=flag,
                order_id=flag.order_id,
                reviewer=user,
                reviewer_name=user.get_username(),
                comment=comment,
                created=now,
            )
            for flag in flags
        )
        orders_recount_open_flags(order_ids=order_ids)
    return marked


def orders_recount_open_flags(*, order_ids: Iterable[UUID]) -> None:
    """Set `Order.open_flags` from the flags themselves (the caller holds the order rows)."""
    open_count = (
        OrderFlag.objects.filter(order=OuterRef("pk"), reviewed_at__isnull=True)
        .order_by()
        .values("order")
        .annotate(n=Count("pk"))
        .values("n")
    )
    Order.objects.filter(pk__in=list(order_ids)).update(
        open_flags=Coalesce(Subquery(open_count), 0)
    )


def orders_reconcile(*, order_ids: Iterable[UUID]) -> Counter[str]:
    """Reconcile chosen orders now, as the sweeps would: apply, then expire.

    1. Their notifications that were never applied, whose applying failed, or
       that came for their transaction before the order was known are applied
       (`notifications_apply_pending(ids=...)`: idempotent).
    2. Those still awaiting payment after their deadline expire.

    Returns counts: orders, notifications examined and their outcomes
    (`outcome:<name>`), expired.
    """
    ids = _bounded(order_ids)
    orders = list(Order.objects.filter(pk__in=ids).values_list("pk", "transaction"))
    transactions = {txn for _, txn in orders if txn is not None}
    counts: Counter[str] = Counter(orders=len(orders))
    retry = (Outcome.PENDING, Outcome.ERROR)
    found = set(
        Notification.objects.filter(order_id__in=ids, outcome__in=retry).values_list(
            "pk", flat=True
        )
    )
    if transactions:
        found |= set(
            Notification.objects.filter(
                transaction__in=transactions, outcome__in=(*retry, Outcome.UNKNOWN_TRANSACTION)
            ).values_list("pk", flat=True)
        )
        unparsed = Notification.objects.filter(
            outcome__in=retry, transaction__isnull=True
        ).values_list("pk", "body")[:UNPARSED_SCAN_LIMIT]
        for pk, body in unparsed:
            try:
                message = parse_notification(bytes(body))
            except InvalidNotification:
                continue
            if message.transaction in transactions:
                found.add(pk)
    if found:
        applied = notifications_apply_pending(ids=sorted(found), older_than_seconds=0)
        counts["notifications"] = applied.pop("examined", 0)
        counts.update(applied)
    counts["expired"] = len(_expire_due(ids))
    return counts


def _expire_due(order_ids: list[UUID]) -> list[UUID]:
    with transaction.atomic():
        due = list(
            Order.objects.select_for_update()
            .filter(
                pk__in=order_ids,
                status=OrderStatus.AWAITING_PAYMENT,
                deadline__lt=timezone.now(),
            )
            .values_list("pk", flat=True)
        )
        if not due:
            return []
        return orders_transition(
            order_ids=due,
            expected_from=OrderStatus.AWAITING_PAYMENT,
            to=OrderStatus.EXPIRED,
            reason="nobody paid before the deadline (reconciled from the admin)",
        )


def notifications_replay(*, notification_ids: Iterable[int]) -> Counter[str]:
    """Apply chosen notifications again, whatever their outcome (idempotent).

    A notification already applied changes nothing the second time; it only
    records its new outcome (duplicate, stale...). Returns the outcomes.
    """
    ids = _bounded(notification_ids)
    return notifications_apply_pending(ids=ids, older_than_seconds=0)
