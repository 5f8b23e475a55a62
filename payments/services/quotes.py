"""Quotes of fiat orders, and whether the BTC paid for an order covers it.

A fiat order is paid in BTC at the gateway's rate of the moment. At creation
the service reads the gateway's ticker (cached by the client for at most the
protocol's 10 s, in the cache every process shares) and keeps the quote: the
rate, the BTC that pays the order at it, and when. A `paid` notification, the
ledger sweep and the hypothesis suite all ask `payment_coverage` whether what
was paid covers the order: within the order's shop's underpaid tolerance
(`Shop.underpaid_tolerance`, else `PAYMENTS_UNDERPAID_TOLERANCE`) of the
quote, paid within `PAYMENTS_QUOTE_WINDOW` seconds of it. A BTC order (or a fiat one
paid in its own currency) needs no rate: the amount must be exact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from uuid import UUID

from django.db.models import TextChoices
from django.utils import timezone

from payments import money
from payments.conf import payments_settings
from payments.exceptions import AmountError
from payments.gateway.client import GatewayClient
from payments.gateway.errors import GatewayError
from payments.gateway_factory import gateway_client
from payments.models import Order, Payment

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Quote:
    rate_int: int  # the currency's units per BTC
    quoted_at: datetime


def quote_read(*, currency: str, client: GatewayClient | None = None) -> Quote | None:
    """The gateway's price of one BTC in `currency` now; None when it cannot be read.

    The ticker is public, so any account's client reads it (order creation
    passes the shop's own; the default shop's when None), from the cache
    every account shares. Never raises for a gateway failure: an order is
    created without a quote (and flagged) rather than refused because the
    ticker is down.
    """
    try:
        last = (client or gateway_client()).ticker(currency).last
    except (GatewayError, AmountError) as exc:
        logger.warning("ticker BTC%s could not be read: %s", currency, exc)
        return None
    if last.currency != currency or last.value_int <= 0:
        logger.warning(
            "ticker BTC%s gave %s %s: not a price", currency, last.value_int, last.currency
        )
        return None
    return Quote(rate_int=last.value_int, quoted_at=timezone.now())


def quote_fields(*, amount_int: int, currency: str, quote: Quote | None) -> dict[str, object]:
    """The Order fields that keep `quote` (none for a BTC order or a missing quote)."""
    if quote is None:
        return {}
    return {
        "quote_rate_int": quote.rate_int,
        "quote_btc_int": money.btc_for(amount_int, currency, quote.rate_int),
        "quoted_at": quote.quoted_at,
    }


def received_int(*, order: Order, currency: str) -> int:
    """What the order's payments brought in `currency` (payments_received)."""
    return payments_received(order.payments.all(), currency=currency)


def payments_received(
    payments: Iterable[Payment], *, currency: str, excluding: UUID | None = None
) -> int:
    """What `payments` (one order's) brought in `currency`, but the payment `excluding`.

    Paid payments in that currency; and, in BTC, the confirmed part
    (`amount_valid`) of payments still reported `partial`: the gateway credits
    bitcoins at 6 confirmations, and reports `paid` only for the payment that
    covers the order, so confirmed money reported `partial` counts too.
    """
    total = 0
    for payment in payments:
        if payment.payment_id == excluding:
            continue
        if payment.status == Payment.Status.PAID and payment.currency == currency:
            total += payment.amount_int or 0
        elif payment.status == Payment.Status.PARTIAL and currency == money.BTC:
            total += payment.amount_valid or 0
    return total


class Verdict(TextChoices):
    COVERED = "covered"
    OVERPAID = "overpaid"
    UNDERPAID = "underpaid"
    QUOTE_MISSING = "quote_missing"
    QUOTE_EXPIRED = "quote_expired"


@dataclass(frozen=True)
class Coverage:
    verdict: Verdict
    detail: str

    @property
    def pays(self) -> bool:
        """The order may become paid on this: all of it came, perhaps more."""
        return self.verdict in (Verdict.COVERED, Verdict.OVERPAID)


def payment_coverage(*, order: Order, paid_int: int, currency: str, sent_at: datetime) -> Coverage:
    """Whether `paid_int` of `currency` (all the order's paid payments in it) pays `order`.

    `sent_at` is when the payer sent the money (the payment first seen): the
    quote's rate holds for that long only. `currency` is BTC or the order's own.
    """
    if currency == order.currency:
        return _compare(paid_int, order.amount_int, currency, tolerance=Decimal(0))
    if order.quote_btc_int is None or order.quoted_at is None:
        return Coverage(
            Verdict.QUOTE_MISSING,
            f"paid {money.display(paid_int, currency)}; the order has no quote to check it against",
        )
    window_end = order.quoted_at + timedelta(seconds=payments_settings.PAYMENTS_QUOTE_WINDOW)
    if sent_at > window_end:
        return Coverage(
            Verdict.QUOTE_EXPIRED,
            f"paid {money.display(paid_int, currency)} at {sent_at:%Y-%m-%d %H:%M:%S}; the quote "
            f"of {money.display(order.quote_btc_int, currency)} held until "
            f"{window_end:%Y-%m-%d %H:%M:%S} UTC",
        )
    return _compare(paid_int, order.quote_btc_int, currency, tolerance=underpaid_tolerance(order))


def underpaid_tolerance(order: Order) -> Decimal:
    """The order's shop's tolerance, else PAYMENTS_UNDERPAID_TOLERANCE.

    `order.shop` is in hand on the IPN and ledger paths (ApplyBatch.order).
    """
    own = order.shop.underpaid_tolerance
    return payments_settings.PAYMENTS_UNDERPAID_TOLERANCE if own is None else own


def _compare(paid: int, due: int, currency: str, *, tolerance: Decimal) -> Coverage:
    slack = int((Decimal(due) * tolerance).to_integral_value(ROUND_FLOOR))
    shown = f"paid {money.display(paid, currency)} of {money.display(due, currency)}"
    if paid < due - slack:
        return Coverage(Verdict.UNDERPAID, f"{shown}: {money.display(due - paid, currency)} short")
    if paid > due + slack:
        return Coverage(
            Verdict.OVERPAID, f"{shown}: {money.display(paid - due, currency)} too much"
        )
    return Coverage(Verdict.COVERED, shown)
