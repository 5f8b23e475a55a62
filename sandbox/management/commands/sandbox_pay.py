"""`python manage.py sandbox_pay <transaction> --status {paid,partial,cancelled}`.

Drives a payment on a sandbox order without a browser, through the same
services as the payment page:

- paid:      a gateway account holder pays (instant `paid`), or, with
             --payment-id, a `partial` payment reaches 6 confirmations;
- partial:   bitcoins sent without an account, still confirming;
- cancelled: the payer cancels.

The amount is the order's BTC price unless --amount-int (BTC, 1E8) or
--amount (decimal BTC) says otherwise.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments import money
from sandbox import currencies, services
from sandbox.exceptions import PaymentRefused
from sandbox.models import IpnDelivery, SandboxOrder, SandboxPayment


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a uuid") from exc


class Command(BaseCommand):
    help = "Pay, partially pay or cancel a sandbox order without a browser (sends the IPN)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("transaction", help="the order's transaction uuid")
        parser.add_argument("--status", required=True, choices=["paid", "partial", "cancelled"])
        amount = parser.add_mutually_exclusive_group()
        amount.add_argument("--amount-int", type=int, help="BTC amount as an integer (1E8)")
        amount.add_argument("--amount", help="BTC amount as a decimal, e.g. 0.5")
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
        status = options["status"]
        try:
            if status == "cancelled":
                payment = services.order_cancel(order=order)
            elif status == "paid" and options["payment_id"]:
                partial = SandboxPayment.objects.filter(
                    order=order, payment_id=_uuid(options["payment_id"])
                ).first()
                if partial is None:
                    raise CommandError(f"no payment {options['payment_id']} on this order")
                payment = services.payment_confirm(payment=partial)
            else:
                payment = services.payment_pay(
                    order=order,
                    method="account" if status == "paid" else "bitcoin",
                    amount_btc_int=self._amount(order, options),
                )
        except PaymentRefused as exc:
            raise CommandError(str(exc)) from exc
        self._report(order, payment)

    def _amount(self, order: SandboxOrder, options: dict[str, Any]) -> int:
        if options["amount_int"] is not None:
            if options["amount_int"] <= 0:
                raise CommandError("--amount-int must be a positive integer")
            return int(options["amount_int"])
        if options["amount"] is not None:
            try:
                return money.to_int(options["amount"], money.BTC)
            except money.AmountError as exc:
                raise CommandError(f"--amount: {exc}") from exc
        return order.amount_btc_int

    def _report(self, order: SandboxOrder, payment: SandboxPayment) -> None:
        order.refresh_from_db(fields=["status"])
        line = f"{payment.status} payment {payment.payment_id} on transaction {order.transaction}"
        if payment.status == SandboxPayment.Status.PARTIAL:
            line += f": {currencies.display(payment.amount_total, money.BTC)} pending"
        elif payment.status == SandboxPayment.Status.PAID:
            line += f": {currencies.display(payment.amount_int, money.BTC)} credited"
        self.stdout.write(self.style.SUCCESS(line))
        self.stdout.write(f"order status: {order.status}")
        delivery = IpnDelivery.objects.filter(payment=payment).order_by("-id").first()
        if delivery is None:
            self.stdout.write("no IPN (the order has no ipn URL)")
        else:
            self.stdout.write(f"IPN #{delivery.pk} queued to {delivery.url}: {delivery.body}")
