"""Ledger reconciliation: find payments whose notification never came.

The gateway has no order-status method; its ledger (wallet history) is the
truth about money credited. Each credit of a merchant payment is matched to
a Payment; a credit with no payment is recorded as one (found by
reconciliation) and moves its order as a `paid` notification would, flagged
`notification_missing`; a credit whose amount differs is flagged.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from django.db import transaction
from django.db.models import Min

from payments import money
from payments.gateway.results import WalletEntry
from payments.models import LedgerCheckpoint, Order, OrderFlag, Payment
from payments.notification_message import NotificationMessage
from payments.services.notifications import order_locked, payment_apply_paid
from payments.services.orders import order_flag
from payments.services.quotes import payment_coverage, received_int
from payments.states import OrderStatus

logger = logging.getLogger(__name__)

Progress = Callable[[int], object]
ENTRIES_PER_TRANSACTION = 200


def ledger_reconcile(
    *,
    client: Any,
    currency: str = "BTC",
    dry_run: bool = False,
    progress: Progress | None = None,
    chunk_size: int = ENTRIES_PER_TRANSACTION,
) -> Counter[str]:
    """Read the ledger after the checkpoint and reconcile each merchant credit.

    `client` is a gateway client (or anything with `iter_wallet_history`).
    The checkpoint row is locked while a batch is applied, so two runs at once
    never apply an entry twice: the second sees the first's checkpoint.
    """
    checkpoint, _ = LedgerCheckpoint.objects.get_or_create(currency=currency)
    counts: Counter[str] = Counter()
    entries = client.iter_wallet_history(currency=currency, date_start=checkpoint.last_date)
    for batch in _batches(entries, chunk_size):
        with transaction.atomic():
            checkpoint = LedgerCheckpoint.objects.select_for_update().get(pk=checkpoint.pk)
            for entry in batch:
                if entry.index <= checkpoint.last_index:
                    continue  # reconciled by an earlier run
                counts["examined"] += 1
                counts[_reconcile_entry(entry, dry_run=dry_run)] += 1
                checkpoint.last_index, checkpoint.last_date = entry.index, entry.date
            if not dry_run:
                checkpoint.save(update_fields=["last_index", "last_date", "updated"])
            else:
                transaction.set_rollback(True)
        if progress:
            progress(len(batch))
    return counts


def _batches(entries: Iterable[WalletEntry], size: int) -> Iterable[list[WalletEntry]]:
    iterator = iter(entries)
    while batch := list(islice(iterator, size)):
        yield batch


def _reconcile_entry(entry: WalletEntry, *, dry_run: bool) -> str:
    link = entry.merchant_link
    if entry.type != "in" or link is None:
        return "not_a_payment"
    try:
        payment_id, transaction_id = uuid.UUID(link.payment_id), uuid.UUID(link.transaction)
    except ValueError:
        return "unmatched"
    credited = (entry.value.value_int, entry.value.currency)
    order = order_locked(transaction=transaction_id, currency=credited[1], payment_id=payment_id)
    if order is None:
        logger.warning("ledger credit %s for an unknown transaction %s", entry.index, link)
        return "unmatched"
    payment = Payment.objects.filter(payment_id=payment_id).first()
    if payment is not None and payment.status == Payment.Status.PAID:
        if (payment.amount_int, payment.currency) == credited:
            return _matched_or_short(order)
        if not dry_run:
            order_flag(
                order_id=order.pk,
                kind=OrderFlag.Kind.AMOUNT_MISMATCH,
                detail=f"ledger credited {credited[0]} {credited[1]} for payment {payment_id}; "
                f"the notification said {payment.amount_int} {payment.currency}",
            )
        return "amount_mismatch"
    if dry_run:
        return "notification_missing"
    message = NotificationMessage(
        transaction=transaction_id,
        payment_id=payment_id,
        status="paid",
        data=order.data,
        amount_int=entry.value.value_int,
        currency=entry.value.currency,
        method="ledger",
        paid_at=entry.date,
    )
    payment_apply_paid(order=order, message=message, source=Payment.Source.RECONCILIATION)
    order.refresh_from_db(fields=["status"])
    if order.status != OrderStatus.PAID:
        # The gateway reports `paid` only for money that covers the order: none was due.
        return _matched_or_short(order)
    order_flag(
        order_id=order.pk,
        kind=OrderFlag.Kind.NOTIFICATION_MISSING,
        detail=f"ledger entry {entry.index} credited payment {payment_id}; no paid notification",
    )
    return "notification_missing"


def _matched_or_short(order: Order) -> str:
    """`matched`, unless the credits recorded for the order do not pay it (why, then).

    A paid order was paid by the rules (or accepted by a person); any other
    is checked the way a `paid` notification is, so a short payment is never
    reported as matched.
    """
    if order.status == OrderStatus.PAID:
        return "matched"
    paid = order.payments.filter(status__in=(Payment.Status.PAID, Payment.Status.PARTIAL))
    first = paid.aggregate(first=Min("created"))["first"] or order.created
    coverage = payment_coverage(
        order=order,
        paid_int=received_int(order=order, currency=money.BTC),
        currency=money.BTC,
        sent_at=first,
    )
    return "matched" if coverage.pays else str(coverage.verdict)
