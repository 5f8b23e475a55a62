"""Every write of the sandbox gateway: nonces, orders, payments, the ledger, IPN deliveries.

Views, tasks, the admin and the sandbox_pay command are thin adapters over
these functions. Nothing here knows about HTTP requests; the only outbound
HTTP is the IPN POST in `ipn_delivery_attempt`, made by the delivery engine
the shop events use too (merchant.delivery).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from merchant import delivery as delivery_engine
from payments import money
from payments.gateway import signing
from sandbox import currencies
from sandbox.exceptions import (
    AlreadyPaid,
    InstantOnly,
    InvalidAmount,
    NoIpnUrl,
    NonceRejected,
    NotConfirmable,
    ParameterError,
)
from sandbox.models import (
    IpnAttempt,
    IpnDelivery,
    LedgerEntry,
    SandboxAccount,
    SandboxOrder,
    SandboxPayment,
)
from sandbox.params import OrderInput
from sandbox.selectors import account_payment_btc, credited_btc, is_covered

logger = logging.getLogger(__name__)

T = TypeVar("T")

IPN_USER_AGENT = "MtGox-Sandbox-IPN/1.0 (merchant-payments sandbox gateway)"
IPN_METHOD = "MTGOXBTC"
# Only this body, exactly (no surrounding whitespace, no newline), with HTTP 200,
# acknowledges an IPN.
IPN_ACK = b"[OK]"


# --- Private calls: the nonce --------------------------------------------------


def nonce_advance(*, account: SandboxAccount, nonce: int) -> bool:
    """Accept `nonce` for the account if it is greater than the last accepted one.

    One conditional UPDATE (`... WHERE last_nonce < nonce`): the database
    decides, so two concurrent requests with the same nonce cannot both win
    (PostgreSQL re-checks the WHERE on the locked row; SQLite serialises
    writers). Call it inside the transaction of the work it authorises.
    """
    updated = SandboxAccount.objects.filter(pk=account.pk, last_nonce__lt=nonce).update(
        last_nonce=nonce, last_login=timezone.now()
    )
    return updated == 1


def private_call(*, account: SandboxAccount, nonce: int, action: Callable[[], T]) -> T:
    """Advance the nonce and run `action` in one transaction.

    NonceRejected when the nonce is stale. When `action` raises (a parameter
    error), the transaction rolls back and the nonce is not advanced.
    """
    with transaction.atomic():
        if not nonce_advance(account=account, nonce=nonce):
            raise NonceRejected("the nonce must be greater than the last one accepted for this key")
        return action()


# --- Orders ----------------------------------------------------------------------


def order_create(*, account: SandboxAccount, data: OrderInput) -> SandboxOrder:
    """Record an order and quote its BTC amount at the sandbox rate."""
    amount_btc_int = currencies.btc_for(data.amount_int, data.currency)
    if amount_btc_int > money.MAX_AMOUNT_INT:
        raise ParameterError(
            data.amount_param, f"parameter {data.amount_param!r} is too large to pay in BTC"
        )
    return SandboxOrder.objects.create(
        account=account,
        currency=data.currency,
        amount_int=data.amount_int,
        amount_btc_int=amount_btc_int,
        description=data.description,
        return_success=data.return_success,
        return_failure=data.return_failure,
        ipn=data.ipn,
        data=data.data,
        email=data.email,
        autosell=data.autosell,
        multipay=data.multipay,
        instant_only=data.instant_only,
    )


def _lock_order(order: SandboxOrder) -> SandboxOrder:
    return SandboxOrder.objects.select_for_update().select_related("account").get(pk=order.pk)


# --- Payments ----------------------------------------------------------------------


def payment_pay(
    *,
    order: SandboxOrder,
    method: Literal["account", "bitcoin"],
    amount_btc_int: int | None = None,
) -> SandboxPayment:
    """A payer pays on the order; each payment sends its IPN.

    `account`: a gateway account holder, instant: pays exactly
    account_payment_btc (`amount_btc_int` is not used: the gateway sets the
    amount, as the real one did), a `paid` payment credited at once (ledger
    entry). `bitcoin`: `amount_btc_int` BTC (1E8), any amount, sent without an
    account and still confirming: a `partial` payment (pending = total = the
    amount, valid = 0), credited only by payment_confirm.
    """
    if method == SandboxPayment.Method.BITCOIN:
        sent = _sent_amount(amount_btc_int)
    elif method != SandboxPayment.Method.ACCOUNT:
        raise ValueError(f"unknown payment method {method!r}")
    with transaction.atomic():
        order = _lock_order(order)
        credited = credited_btc(order)
        _refuse_payment(order, method, credited)
        if method == SandboxPayment.Method.ACCOUNT:
            payment = _account_payment(order, account_payment_btc(order, credited))
        else:
            payment = SandboxPayment.objects.create(
                order=order,
                status=SandboxPayment.Status.PARTIAL,
                method=method,
                amount_int=sent,
                amount_pending=sent,
                amount_valid=0,
                amount_total=sent,
            )
        _notify(order, payment, status=payment.status)
    return payment


def _sent_amount(amount_btc_int: int | None) -> int:
    """The amount of bitcoins sent without an account: any positive BTC amount."""
    if amount_btc_int is None or not 0 < amount_btc_int <= money.MAX_AMOUNT_INT:
        raise InvalidAmount("the amount must be a positive BTC amount")
    return amount_btc_int


def _account_payment(order: SandboxOrder, amount_btc_int: int) -> SandboxPayment:
    now = timezone.now()
    payment = SandboxPayment.objects.create(
        order=order,
        status=SandboxPayment.Status.PAID,
        method=SandboxPayment.Method.ACCOUNT,
        amount_int=amount_btc_int,
        amount_valid=amount_btc_int,
        amount_total=amount_btc_int,
        paid_at=now,
        created=now,
    )
    _credit(order, payment)
    return payment


def _refuse_payment(order: SandboxOrder, method: str, credited: int) -> None:
    """Raise when the order does not take this payment now (instant_only, paid in full)."""
    if method == SandboxPayment.Method.BITCOIN and order.instant_only:
        raise InstantOnly(
            "This order accepts only instant payments from gateway account holders "
            "(instant_only): paying with bitcoin without an account is not offered."
        )
    if not order.multipay and is_covered(order, credited):
        raise AlreadyPaid(
            "This order has already been paid in full and does not accept further "
            "payments (no multipay)."
        )


def payment_confirm(*, payment: SandboxPayment) -> SandboxPayment:
    """The bitcoins of a `partial` payment reach 6 confirmations: it is credited.

    The payment is `paid` at the gateway (confirmed, credited: a ledger entry)
    whatever its amount. Its IPN is `paid` only when the order's credited BTC,
    with this payment, covers the price; otherwise the order stays open and
    the IPN is a `partial` with the confirmed figures (valid = total, pending
    = 0): money that does not cover the price never makes a `paid` IPN.
    """
    with transaction.atomic():
        order = _lock_order(payment.order)
        payment = SandboxPayment.objects.select_for_update().get(pk=payment.pk)
        if payment.status != SandboxPayment.Status.PARTIAL:
            raise NotConfirmable(f"payment {payment.payment_id} is {payment.status}, not partial")
        now = timezone.now()
        payment.amount_valid = payment.amount_total
        payment.amount_pending = 0
        payment.amount_int = payment.amount_total
        payment.status = SandboxPayment.Status.PAID
        payment.paid_at = now
        payment.save(
            update_fields=["amount_valid", "amount_pending", "amount_int", "status", "paid_at"]
        )
        covered = _credit(order, payment)
        notified = SandboxPayment.Status.PAID if covered else SandboxPayment.Status.PARTIAL
        _notify(order, payment, status=notified)
    return payment


def order_cancel(*, order: SandboxOrder) -> SandboxPayment:
    """The payer cancels: a `cancelled` payment and its IPN; refused once paid in full."""
    with transaction.atomic():
        order = _lock_order(order)
        if order.status == SandboxOrder.Status.PAID:
            raise AlreadyPaid("This order has been paid in full; it can no longer be cancelled.")
        payment = SandboxPayment.objects.create(
            order=order,
            status=SandboxPayment.Status.CANCELLED,
            method=SandboxPayment.Method.NONE,
        )
        order.status = SandboxOrder.Status.CANCELLED
        order.save(update_fields=["status"])
        _notify(order, payment, status=payment.status)
    return payment


def _credit(order: SandboxOrder, payment: SandboxPayment) -> bool:
    """Credit a paid payment: one BTC `in` ledger entry; the order is paid once covered.

    Returns whether the order is covered, with this payment. The account row
    is locked so wallet indexes and balances follow one another.
    """
    account = SandboxAccount.objects.select_for_update().get(pk=order.account_id)
    last = (
        LedgerEntry.objects.filter(account=account, currency=money.BTC)
        .order_by("-index")
        .only("index", "balance_int")
        .first()
    )
    LedgerEntry.objects.create(
        account=account,
        currency=money.BTC,
        index=(last.index if last else 0) + 1,
        type=LedgerEntry.Type.IN,
        value_int=payment.amount_int,
        balance_int=(last.balance_int if last else 0) + payment.amount_int,
        info=f"BTC received for merchant transaction {order.transaction}"[:255],
        payment=payment,
        transaction=order.transaction,
        date=payment.paid_at or timezone.now(),
    )
    covered = is_covered(order, credited_btc(order))
    if covered and order.status != SandboxOrder.Status.PAID:
        order.status = SandboxOrder.Status.PAID
        order.save(update_fields=["status"])
    return covered


# --- IPN ---------------------------------------------------------------------------


def ipn_date(*, moment: datetime) -> str:
    """IPN dates: 'YYYY-MM-DD HH:MM:SS' in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ipn_fields(
    order: SandboxOrder, payment_id: uuid.UUID, status: str, details: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """An IPN's form fields in the contract's order: id, payment_id, status, details, data."""
    fields = [("id", str(order.transaction)), ("payment_id", str(payment_id)), ("status", status)]
    fields += details
    if order.data:
        fields.append(("data", order.data))
    return fields


def _paid_details(amount_int: int, moment: datetime) -> list[tuple[str, str]]:
    return [
        ("amount", str(amount_int)),
        ("currency", money.BTC),
        ("method", IPN_METHOD),
        ("date", ipn_date(moment=moment)),
    ]


def _partial_details(*, pending: int, valid: int, total: int) -> list[tuple[str, str]]:
    return [
        ("amount_pending", str(pending)),
        ("amount_valid", str(valid)),
        ("amount_total", str(total)),
    ]


def ipn_fields(
    *, order: SandboxOrder, payment: SandboxPayment, status: str
) -> list[tuple[str, str]]:
    """The IPN of a payment event, as `status` (`paid`, `partial`, `cancelled`)."""
    details: list[tuple[str, str]] = []
    if status == SandboxPayment.Status.PAID:
        details = _paid_details(payment.amount_int, payment.paid_at or payment.created)
    elif status == SandboxPayment.Status.PARTIAL:
        details = _partial_details(
            pending=payment.amount_pending,
            valid=payment.amount_valid,
            total=payment.amount_total,
        )
    return _ipn_fields(order, payment.payment_id, status, details)


def _notify(order: SandboxOrder, payment: SandboxPayment, *, status: str) -> IpnDelivery | None:
    """Record the IPN of this payment event and send it after commit (no ipn URL: none)."""
    if not order.ipn:
        return None
    return _deliver(order, payment, status, ipn_fields(order=order, payment=payment, status=status))


def _deliver(
    order: SandboxOrder,
    payment: SandboxPayment | None,
    status: str,
    fields: list[tuple[str, str]],
) -> IpnDelivery:
    """Record an IPN delivery and enqueue it after commit; call inside a transaction."""
    delivery = IpnDelivery.objects.create(
        payment=payment,
        order=order,
        status=status,
        body=urlencode(fields),
        url=order.ipn,
        next_attempt_at=timezone.now(),
    )
    delivery_id = delivery.pk
    # robust: a broker that is down must not fail a committed payment; the
    # sweep (redeliver_due_ipns) picks up what was not enqueued.
    transaction.on_commit(lambda: _enqueue(delivery_id), robust=True)
    return delivery


# --- Deliberately wrong IPNs (sandbox_pay --wrong) ----------------------------------

# What each one sends. None of them is a payment: nothing is recorded as paid,
# nothing is credited; the IPN is signed and delivered like any other.
WRONG_IPNS: dict[str, str] = {
    "underpaid-paid": "a `paid` IPN for less than the price (half, or the amount given)",
    "zero-amount": "a `paid` IPN with amount=0",
    "missing-amount": "a `paid` IPN without the `amount` field",
    "inconsistent-partial": (
        "a `partial` IPN whose amount_valid + amount_pending is not amount_total"
        " (each is the price)"
    ),
}


def ipn_send_wrong(
    *, order: SandboxOrder, kind: str, amount_btc_int: int | None = None
) -> IpnDelivery:
    """Send a deliberately wrong IPN (WRONG_IPNS) about the order, for testers.

    Signed with the merchant's secret and delivered like any IPN (an
    IpnDelivery, the Celery task, the retries), under a new payment_id; but
    the gateway received nothing: no payment row, no ledger entry, the
    order's status unchanged. The delivery has no payment. `amount_btc_int`
    only for `underpaid-paid` (below the price; default half of it).
    """
    if kind not in WRONG_IPNS:
        raise ValueError(f"unknown wrong IPN {kind!r}")
    if amount_btc_int is not None and kind != "underpaid-paid":
        raise InvalidAmount(f"{kind} takes no amount; only underpaid-paid does")
    if not order.ipn:
        raise NoIpnUrl("This order has no ipn URL: there is nowhere to send a notification.")
    status, details = _wrong_details(order, kind, amount_btc_int)
    with transaction.atomic():
        return _deliver(order, None, status, _ipn_fields(order, uuid.uuid4(), status, details))


def _wrong_details(
    order: SandboxOrder, kind: str, amount_btc_int: int | None
) -> tuple[str, list[tuple[str, str]]]:
    """The status and the fields between `status` and `data` of a wrong IPN."""
    price = order.amount_btc_int
    now = timezone.now()
    if kind == "underpaid-paid":
        amount = price // 2 if amount_btc_int is None else amount_btc_int
        if not 0 < amount < price:
            raise InvalidAmount(
                f"an underpaid notification needs an amount from 1 to {price - 1} "
                f"(below the price, {currencies.display(price, money.BTC)})"
            )
        return SandboxPayment.Status.PAID, _paid_details(amount, now)
    if kind == "zero-amount":
        return SandboxPayment.Status.PAID, _paid_details(0, now)
    if kind == "missing-amount":
        fields = [field for field in _paid_details(0, now) if field[0] != "amount"]
        return SandboxPayment.Status.PAID, fields
    return SandboxPayment.Status.PARTIAL, _partial_details(pending=price, valid=price, total=price)


def _enqueue(delivery_id: int) -> None:
    from sandbox.tasks import deliver_ipn

    deliver_ipn.delay(delivery_id)


def retry_seconds() -> int:
    return int(settings.SANDBOX_IPN_RETRY_SECONDS)


def _timeout() -> float:
    return float(settings.SANDBOX_IPN_TIMEOUT)


def attempt_time_limits() -> tuple[float, float]:
    """The (soft, hard) time limits of one delivery attempt's task (merchant.delivery)."""
    return delivery_engine.attempt_time_limits(_timeout())


@dataclass(frozen=True)
class AttemptOutcome:
    """What ipn_delivery_attempt did: `retry_in` seconds when the IPN must be re-sent."""

    result: Literal["delivered", "failed", "skipped"]
    retry_in: int | None = None


def _send(delivery: IpnDelivery) -> delivery_engine.Reply:
    """POST the IPN's recorded body to its URL, signed as the gateway signs (Rest-Sign)."""
    body = delivery.body_bytes
    account = delivery.order.account
    headers = {
        "Rest-Key": str(account.api_key),
        "Rest-Sign": signing.sign(body, account.secret),
        "User-Agent": IPN_USER_AGENT,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return delivery_engine.post(delivery.url, body=body, headers=headers, timeout=_timeout())


def _acknowledged(reply: delivery_engine.Reply) -> bool:
    """Only HTTP 200 with exactly "[OK]" acknowledges an IPN."""
    return reply.http_status == 200 and reply.body == IPN_ACK


def _settle(
    delivery: IpnDelivery, reply: delivery_engine.Reply, started: datetime, finished: datetime
) -> AttemptOutcome:
    """Record the attempt; the IPN is delivered, or due again after the retry interval."""
    ok = _acknowledged(reply)
    IpnAttempt.objects.create(
        delivery=delivery, time=started, **delivery_engine.attempt_fields(reply, ok=ok)
    )
    this = IpnDelivery.objects.filter(pk=delivery.pk)
    if ok:
        this.update(delivered_at=finished, next_attempt_at=None)
        return AttemptOutcome("delivered")
    retry = retry_seconds()
    this.update(next_attempt_at=finished + timedelta(seconds=retry))
    return AttemptOutcome("failed", retry_in=retry)


def ipn_delivery_attempt(*, delivery_id: int) -> AttemptOutcome:
    """POST a delivery's IPN once, unless it is acknowledged already or not due.

    The claim (merchant.delivery) also pushes next_attempt_at forward: a
    duplicate task for the same delivery finds nothing to do, and one that
    was acknowledged is never sent again. Every POST is recorded as an
    IpnAttempt.
    """
    outcome = delivery_engine.attempt_once(
        due=IpnDelivery.objects.select_related("order__account").filter(pk=delivery_id),
        # The gateway's interval past the task's hard time limit: an attempt
        # killed there is sent again at the interval, never while it may run.
        lease=timedelta(seconds=retry_seconds() + attempt_time_limits()[1]),
        send=_send,
        settle=_settle,
        report=_report,
    )
    return outcome or AttemptOutcome("skipped")


def _report(delivery: IpnDelivery, reply: delivery_engine.Reply, outcome: AttemptOutcome) -> None:
    acknowledged = outcome.result == "delivered"
    logger.info(
        "sandbox IPN #%s (%s) attempt: %s",
        delivery.pk,
        delivery.status,
        "acknowledged" if acknowledged else (reply.http_status or reply.error[:80]),
        extra={
            "delivery_id": delivery.pk,
            "transaction": str(delivery.order.transaction),
            "http_status": reply.http_status,
            "acknowledged": acknowledged,
        },
    )


def ipn_redeliver_due(*, grace_seconds: int | None = None, limit: int = 500) -> list[int]:
    """Enqueue deliveries not acknowledged whose next attempt is overdue by `grace_seconds`.

    A retry lost with a broker or a worker is not lost forever. Default grace:
    settings.SANDBOX_IPN_SWEEP_GRACE_SECONDS. Duplicates are harmless:
    the attempt's claim lets one through.
    """
    if grace_seconds is None:
        grace_seconds = int(settings.SANDBOX_IPN_SWEEP_GRACE_SECONDS)
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    due = list(
        IpnDelivery.objects.filter(delivered_at__isnull=True, next_attempt_at__lt=cutoff)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due:
        _enqueue(delivery_id)
    return due


def ipn_delivery_resend(*, delivery_id: int) -> bool:
    """Make an unacknowledged delivery due now and enqueue it (admin action)."""
    updated = IpnDelivery.objects.filter(pk=delivery_id, delivered_at__isnull=True).update(
        next_attempt_at=timezone.now()
    )
    if updated:
        transaction.on_commit(lambda: _enqueue(delivery_id), robust=True)
    return bool(updated)
