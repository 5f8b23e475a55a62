"""Reads shared by the API, the pages and the admin. No writes here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet, Sum

from payments import money
from sandbox import currencies
from sandbox.models import LedgerEntry, SandboxAccount, SandboxOrder, SandboxPayment
from sandbox.params import HistoryInput

HISTORY_PAGE_SIZE = 50
ACCOUNT_RIGHTS = ["get_info", "merchant"]
TRADE_FEE = 0.6  # percent, as the gateway shows it (display only, never money)


def credited_btc(order: SandboxOrder) -> int:
    """BTC (1E8) credited to the merchant for this order: the sum of its paid payments."""
    total = order.payments.filter(status=SandboxPayment.Status.PAID).aggregate(
        total=Sum("amount_int")
    )["total"]
    return int(total or 0)


def is_covered(order: SandboxOrder, credited: int) -> bool:
    """The gateway's rule: an order is paid once what it credited covers its BTC price."""
    return credited >= order.amount_btc_int


def account_payment_btc(order: SandboxOrder, credited: int) -> int:
    """What a gateway account pays on the order: exactly what the price still needs.

    The rest of the BTC price after what is credited; once covered (multipay
    only), the price again. The payer does not choose it.
    """
    if is_covered(order, credited):
        return order.amount_btc_int
    return order.amount_btc_int - credited


def _stamp(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def account_info(account: SandboxAccount) -> dict[str, Any]:
    """The return of 1/generic/private/info."""
    wallets: dict[str, Any] = {money.BTC: {"Balance": currencies.value_object(0, money.BTC)}}
    operations = {money.BTC: 0}
    for row in (
        LedgerEntry.objects.filter(account=account)
        .values("currency")
        .annotate(operations=Count("id"))
        .order_by()
    ):
        operations[row["currency"]] = row["operations"]
    for currency, count in sorted(operations.items()):
        last = (
            LedgerEntry.objects.filter(account=account, currency=currency)
            .order_by("-index")
            .only("balance_int")
            .first()
        )
        balance = last.balance_int if last else 0
        wallets[currency] = {
            "Balance": currencies.value_object(balance, currency),
            "Operations": count,
        }
    return {
        "Login": account.login,
        "Index": str(account.pk),
        "Id": str(account.public_id),
        "Rights": list(ACCOUNT_RIGHTS),
        "Language": "en_US",
        "Created": _stamp(account.created),
        "Last_Login": _stamp(account.last_login),
        "Wallets": wallets,
        "Trade_Fee": TRADE_FEE,
    }


def _history_entry(entry: LedgerEntry) -> dict[str, Any]:
    payment_id = str(entry.payment.payment_id) if entry.payment else ""
    transaction = str(entry.transaction) if entry.transaction else ""
    return {
        "Index": str(entry.index),
        "Date": int(entry.date.timestamp()),
        "Type": entry.type,
        "Value": currencies.value_object(entry.value_int, entry.currency),
        "Balance": currencies.value_object(entry.balance_int, entry.currency),
        "Info": entry.info,
        "Link": [payment_id, "Money_Merchant", transaction],
    }


def wallet_history(account: SandboxAccount, query: HistoryInput) -> dict[str, Any]:
    """The return of 1/generic/private/wallet/history: 50 per page, oldest first."""
    entries = LedgerEntry.objects.filter(account=account, currency=query.currency)
    if query.type:
        entries = entries.filter(type=query.type)
    if query.date_start:
        entries = entries.filter(date__gte=query.date_start)
    if query.date_end:
        entries = entries.filter(date__lte=query.date_end)
    if query.trade_id is not None:
        # The sandbox has no trades: no entry belongs to a trade.
        entries = entries.none()
    total = entries.count()
    max_page = max(1, math.ceil(total / HISTORY_PAGE_SIZE))
    start = (query.page - 1) * HISTORY_PAGE_SIZE
    page = entries.select_related("payment").order_by("index")[start : start + HISTORY_PAGE_SIZE]
    return {
        "records": str(total),
        "result": [_history_entry(entry) for entry in page],
        "current_page": query.page,
        "max_page": max_page,
        "max_results": HISTORY_PAGE_SIZE,
    }


def recent_orders(limit: int = 50) -> list[dict[str, Any]]:
    """The newest orders with their amounts for display (the sandbox index page)."""
    orders: QuerySet[SandboxOrder] = SandboxOrder.objects.select_related("account").order_by(
        "-created", "-id"
    )[:limit]
    return [
        {"order": order, "amount_display": currencies.display(order.amount_int, order.currency)}
        for order in orders
    ]


@dataclass(frozen=True)
class AmountChoice:
    value: str
    label: str
    amount_btc_int: int | None


@dataclass(frozen=True)
class PaymentRow:
    payment: SandboxPayment
    amount_display: str
    pending_display: str
    valid_display: str
    confirmable: bool


def amount_choices(order: SandboxOrder) -> list[AmountChoice]:
    """The amounts offered for bitcoins sent without an account.

    The price, too little, too much, or typed in. A gateway account chooses
    none: it pays exactly account_payment_btc.
    """
    due = order.amount_btc_int
    less = max(1, due // 2)
    more = due + due // 2
    return [
        AmountChoice("full", f"The price: {currencies.display(due, money.BTC)}", due),
        AmountChoice("less", f"Too little (half): {currencies.display(less, money.BTC)}", less),
        AmountChoice("more", f"Too much (150%): {currencies.display(more, money.BTC)}", more),
        AmountChoice("custom", "Another amount (BTC):", None),
    ]


def order_page(order: SandboxOrder) -> dict[str, Any]:
    """What the hosted payment page shows about an order."""
    credited = credited_btc(order)
    paid_in_full = is_covered(order, credited)
    rows = [
        PaymentRow(
            payment=payment,
            amount_display=currencies.display(payment.amount_int, money.BTC),
            pending_display=currencies.display(payment.amount_pending, money.BTC),
            valid_display=currencies.display(payment.amount_valid, money.BTC),
            confirmable=payment.status == SandboxPayment.Status.PARTIAL,
        )
        for payment in order.payments.order_by("created", "id")
    ]
    confirming = sum(row.payment.amount_pending for row in rows if row.confirmable)
    rate = None
    if order.currency != money.BTC:
        rate = currencies.display(currencies.rate_int(order.currency), order.currency)
    return {
        "order": order,
        "description": order.description or f"Payment to {order.account.login}",
        "amount_display": currencies.display(order.amount_int, order.currency),
        "btc_display": currencies.display(order.amount_btc_int, money.BTC),
        "is_btc": order.currency == money.BTC,
        "rate_display": rate,
        "credited_display": currencies.display(credited, money.BTC),
        "account_display": currencies.display(account_payment_btc(order, credited), money.BTC),
        "confirming_display": currencies.display(confirming, money.BTC) if confirming else "",
        "paid_in_full": paid_in_full,
        "can_pay": order.multipay or not paid_in_full,
        "can_pay_bitcoin": not order.instant_only,
        "can_cancel": order.status != SandboxOrder.Status.PAID,
        "payments": rows,
        "amount_choices": amount_choices(order),
    }
