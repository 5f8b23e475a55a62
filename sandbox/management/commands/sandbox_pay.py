"""`python manage.py sandbox_pay <transaction> (--status STATUS | --wrong KIND)`.

Drives a payment on a sandbox order without a browser, through the same
services as the payment page, keeping the gateway's rules:

- paid:      a gateway account holder pays (instant `paid`): exactly what
             the order still needs, never another amount; or, with
             --payment-id, a `partial` payment reaches 6 confirmations (its
             IPN is `paid` only if the order is then covered, else `partial`);
- partial:   bitcoins sent without an account, still confirming: the
             order's BTC price unless --amount-int (BTC, 1E8) or --amount
             (decimal BTC) says otherwise (too little, too much: any amount);
- cancelled: the payer cancels.

--wrong sends a deliberately wrong IPN instead (services.WRONG_IPNS), for
testing a receiver: signed and delivered like any IPN, but nothing is paid
or credited at the gateway.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments import money
from payments.exceptions import AmountError
from sandbox import currencies, services
from sandbox.exceptions import PaymentRefused
from sandbox.models import IpnDelivery, SandboxOrder, SandboxPayment


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a uuid") from exc


def _btc(amount_int: int) -> str:
    return currencies.display(amount_int, money.BTC)


class Command(BaseCommand):
    help = (
        "Pay, partially pay or cancel a sandbox order without a browser (sends the IPN). "
        "A gateway account (--status paid) pays exactly what the order still needs; "
        "bitcoins sent without an account (--status partial) may be any amount, and their "
        "IPN is `paid` only once confirmed money covers the price. --wrong sends a "
        "deliberately wrong IPN for testing (signed and delivered, nothing credited)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("transaction", help="the order's transaction uuid")
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument(
            "--status",
            choices=["paid", "partial", "cancelled"],
            help="paid: with a gateway account, exactly what the order needs (or confirm "
            "--payment-id); partial: bitcoins without an account, any amount; cancelled",
        )
        mode.add_argument(
            "--wrong",
            choices=list(services.WRONG_IPNS),
            help="send a deliberately wrong IPN, nothing credited: "
            + "; ".join(f"{kind}: {sends}" for kind, sends in services.WRONG_IPNS.items()),
        )
        amount = parser.add_mutually_exclusive_group()
        amount.add_argument(
            "--amount-int",
            type=int,
            help="BTC amount as an integer (1E8): what --status partial sends (default: the "
            "price) or what --wrong underpaid-paid claims (default: half the price)",
        )
        amount.add_argument("--amount", help="the same as a decimal BTC amount, e.g. 0.5")
        parser.add_argument(
            "--payment-id",
            help="with --status paid: confirm this partial payment instead of a new payment",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        transaction = _uuid(options["transaction"])
        order = (
            SandboxOrder.objects.select_related("account").filter(transaction=transaction).first()
        )
        if order is None:
            raise CommandError(f"no sandbox order {transaction}")
        amount = self._amount(options)
        try:
            if options["wrong"]:
                if options["payment_id"]:
                    raise CommandError("--payment-id goes with --status paid, not --wrong")
                delivery = services.ipn_send_wrong(
                    order=order, kind=options["wrong"], amount_btc_int=amount
                )
                self._report_wrong(order, options["wrong"], delivery)
                return
            payment = self._pay(order, options["status"], options["payment_id"], amount)
        except PaymentRefused as exc:
            raise CommandError(str(exc)) from exc
        self._report(order, payment)

    def _pay(
        self, order: SandboxOrder, status: str, payment_id: str | None, amount: int | None
    ) -> SandboxPayment:
        if payment_id and status != "paid":
            raise CommandError("--payment-id goes with --status paid")
        if amount is not None and status != "partial":
            needed = services.account_payment_btc(order, services.credited_btc(order))
            raise CommandError(
                "--amount and --amount-int go with --status partial (bitcoins sent without "
                "an account) or --wrong underpaid-paid. A gateway account (--status paid) "
                f"pays exactly what the order needs, {_btc(needed)} now, and a confirmation "
                "confirms what was sent."
            )
        if status == "cancelled":
            return services.order_cancel(order=order)
        if payment_id:
            partial = SandboxPayment.objects.filter(order=order, payment_id=_uuid(payment_id))
            if not partial.exists():
                raise CommandError(f"no payment {payment_id} on this order")
            return services.payment_confirm(payment=partial.get())
        if status == "paid":
            return services.payment_pay(order=order, method="account")
        sent = order.amount_btc_int if amount is None else amount
        return services.payment_pay(order=order, method="bitcoin", amount_btc_int=sent)

    def _amount(self, options: dict[str, Any]) -> int | None:
        if options["amount_int"] is not None:
            if options["amount_int"] <= 0:
                raise CommandError("--amount-int must be a positive integer")
            return int(options["amount_int"])
        if options["amount"] is not None:
            try:
                return money.to_int(options["amount"], money.BTC)
            except AmountError as exc:
                raise CommandError(f"--amount: {exc}") from exc
        return None

    def _report(self, order: SandboxOrder, payment: SandboxPayment) -> None:
        order.refresh_from_db(fields=["status"])
        line = f"{payment.status} payment {payment.payment_id} on transaction {order.transaction}"
        if payment.status == SandboxPayment.Status.PARTIAL:
            line += f": {_btc(payment.amount_total)} pending"
        elif payment.status == SandboxPayment.Status.PAID:
            line += f": {_btc(payment.amount_int)} credited"
        self.stdout.write(self.style.SUCCESS(line))
        self.stdout.write(f"order status: {order.status}")
        delivery = IpnDelivery.objects.filter(payment=payment).order_by("-id").first()
        if delivery is None:
            self.stdout.write("no IPN (the order has no ipn URL)")
            return
        if payment.status == SandboxPayment.Status.PAID and delivery.status != payment.status:
            self.stdout.write("the order is not covered yet: the IPN is partial, not paid")
        self._write_delivery(delivery)

    def _report_wrong(self, order: SandboxOrder, kind: str, delivery: IpnDelivery) -> None:
        self.stdout.write(
            self.style.WARNING(
                f"deliberately wrong IPN ({kind}: {services.WRONG_IPNS[kind]}) "
                f"on transaction {order.transaction}; nothing paid or credited"
            )
        )
        self.stdout.write(f"order status: {order.status}")
        self._write_delivery(delivery)

    def _write_delivery(self, delivery: IpnDelivery) -> None:
        self.stdout.write(
            f"IPN #{delivery.pk} ({delivery.status}) queued to {delivery.url}: {delivery.body}"
        )
