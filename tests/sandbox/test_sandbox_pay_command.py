"""`manage.py sandbox_pay`: drive payments without a browser."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sandbox.models import IpnDelivery, LedgerEntry, SandboxAccount, SandboxPayment
from tests.sandbox.conftest import make_order

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("sandbox_pay", *args, stdout=out)
    return out.getvalue()


def test_paid_pays_the_price_by_default(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000)

    output = run(str(order.transaction), "--status", "paid")

    payment = SandboxPayment.objects.get()
    assert (payment.status, payment.amount_int) == ("paid", 40_000_000)
    assert LedgerEntry.objects.get().payment == payment
    assert str(payment.payment_id) in output
    assert "0.40000000" in output
    assert "order status: paid" in output
    assert "status=paid" in output  # the IPN body that was queued


def test_partial_then_confirm_with_payment_id(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000)

    run(str(order.transaction), "--status", "partial", "--amount", "0.1")
    partial = SandboxPayment.objects.get()
    assert (partial.status, partial.amount_pending, partial.amount_total) == (
        "partial",
        10_000_000,
        10_000_000,
    )

    output = run(
        str(order.transaction), "--status", "paid", "--payment-id", str(partial.payment_id)
    )

    partial.refresh_from_db()
    assert (partial.status, partial.amount_valid) == ("paid", 10_000_000)
    assert SandboxPayment.objects.count() == 1
    assert [d.status for d in IpnDelivery.objects.order_by("id")] == ["partial", "paid"]
    assert "order status: open" in output  # 0.1 of 0.4 BTC


def test_amount_int_and_cancelled(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000, multipay=True)

    run(str(order.transaction), "--status", "paid", "--amount-int", "123")
    output = run(str(order.transaction), "--status", "cancelled")

    amounts = [(p.status, p.amount_int) for p in SandboxPayment.objects.order_by("id")]
    assert amounts == [("paid", 123), ("cancelled", 0)]
    assert "order status: cancelled" in output


def test_without_an_ipn_url_it_says_so(account: SandboxAccount) -> None:
    order = make_order(account, ipn="")

    assert "no IPN" in run(str(order.transaction), "--status", "paid")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-a-uuid", "--status", "paid"], "not a uuid"),
        (["8d7f6e5c-0000-4000-8000-000000000000", "--status", "paid"], "no sandbox order"),
        (["{tx}", "--status", "paid", "--amount", "1e5"], "--amount"),
        (["{tx}", "--status", "paid", "--amount-int", "0"], "--amount-int"),
        (["{tx}", "--status", "partial"], "instant_only"),
    ],
)
def test_errors(account: SandboxAccount, args: list[str], message: str) -> None:
    order = make_order(account, instant_only=True)

    with pytest.raises(CommandError, match=message):
        run(*[a.replace("{tx}", str(order.transaction)) for a in args])
    assert not SandboxPayment.objects.exists()


def test_an_order_paid_in_full_refuses_more(account: SandboxAccount) -> None:
    order = make_order(account)
    run(str(order.transaction), "--status", "paid")

    with pytest.raises(CommandError, match="already been paid"):
        run(str(order.transaction), "--status", "paid")
