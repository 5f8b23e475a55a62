"""Ledger reconciliation: find payments whose notification never came.

The gateway has no order-status method; its ledger (wallet history) is the
truth about money credited. Each credit of a merchant payment is matched to
a Payment; a credit with no payment is recorded as one (found by
reconciliation) and moves its order as a `paid` notification would, flagged
`notification_missing`; a credit whose amount differs is flagged.

Every shop has its own gateway account, so its own ledger: `ledgers_reconcile`
reads each shop's with that shop's client, from that shop's checkpoint, and
matches its credits to that shop's orders only. A shop whose credentials
cannot be read, or whose key the gateway refuses, is skipped (logged as an
error) without holding up the others.
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
from payments.exceptions import ShopUnconfigured
from payments.gateway.errors import GatewayRejected
from payments.gateway.results import WalletEntry
from payments.gateway_factory import gateway_client
from payments.models import LedgerCheckpoint, Order, OrderFlag, Payment, Shop
from payments.notification_message import NotificationMessage
from payments.services.apply_batch import ApplyBatch
from payments.services.notifications import payment_apply_paid
from payments.services.orders import order_flag
from payments.services.quotes import payment_coverage, received_int
from payments.shops import shop_default
from payments.states import OrderStatus

logger = logging.getLogger(__name__)

Progress = Callable[[int], object]
ENTRIES_PER_TRANSACTION = 200


def ledgers_reconcile(
    *, dry_run: bool = False, progress: Progress | None = None, **options: Any
) -> Counter[str]:
    """`ledger_reconcile` for every shop (disabled ones too: their money still arrives).

    Counts add up over the shops, with `shops` reconciled and `shops_skipped`
    (unreadable credentials, or a key the gateway refuses; each logged as an
    error). GatewayUnavailable and timeouts end the run: the gateway is down for
    every shop, and the next run carries on from each shop's checkpoint.
    """
    counts: Counter[str] = Counter()
    for shop in list(Shop.objects.order_by("pk")):
        try:
            with gateway_client(shop=shop) as client:
                counts.update(
                    ledger_reconcile(
                        client=client, shop=shop, dry_run=dry_run, progress=progress, **options
                    )
                )
        except (ShopUnconfigured, GatewayRejected) as exc:
            logger.error(
                "ledger sweep: shop %s skipped: %s",
                shop.name,
                exc,
                extra={"shop_id": shop.pk, "shop": shop.name},
            )
            counts["shops_skipped"] += 1
            continue
        counts["shops"] += 1
    return counts


def ledger_reconcile(
    *,
    client: Any,
    shop: Shop | None = None,
    currency: str = "BTC",
    dry_run: bool = False,
    progress: Progress | None = None,
    chunk_size: int = ENTRIES_PER_TRANSACTION,
) -> Counter[str]:
    """Read `shop`'s ledger after its checkpoint and reconcile each merchant credit.

    `client` is a gateway client of `shop`'s account (the default shop when
    None), or anything with `iter_wallet_history`. The checkpoint row is locked
    while a batch is applied, so two runs at once never apply an entry twice:
    the second sees the first's checkpoint.
    """
    shop = shop or shop_default()
    checkpoint, _ = LedgerCheckpoint.objects.get_or_create(shop=shop, currency=currency)
    counts: Counter[str] = Counter()
    entries = client.iter_wallet_history(currency=currency, date_start=checkpoint.last_date)
    for batch in _batches(entries, chunk_size):
        with transaction.atomic():
            checkpoint = LedgerCheckpoint.objects.select_for_update().get(pk=checkpoint.pk)
            for entry in batch:
                if entry.index <= checkpoint.last_index:
                    continue  # reconciled by an earlier run
                counts["examined"] += 1
                counts[_reconcile_entry(entry, shop=shop, dry_run=dry_run)] += 1
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


def _reconcile_entry(entry: WalletEntry, *, shop: Shop, dry_run: bool) -> str:
    link = entry.merchant_link
    if entry.type != "in" or link is None:
        return "not_a_payment"
    try:
        payment_id, transaction_id = uuid.UUID(link.payment_id), uuid.UUID(link.transaction)
    except ValueError:
        return "unmatched"
    credited = (entry.value.value_int, entry.value.currency)
    batch = ApplyBatch.locked(transactions=[transaction_id], payment_ids=[payment_id])
    order = batch.order(shop=shop, transaction=transaction_id)
    if order is None:
        logger.warning(
            "ledger credit %s of shop %s for a transaction it has no order of: %s",
            entry.index,
            shop.name,
            link,
        )
        return "unmatched"
    # This order's payment only: another order's payment id is never compared or changed.
    payment = batch.payment(payment_id=payment_id)
    if payment is not None and payment.order_id != order.pk:
        payment = None
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
    payment_apply_paid(
        batch=batch, order=order, message=message, source=Payment.Source.RECONCILIATION
    )
    batch.flush()
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
