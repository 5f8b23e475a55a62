"""`manage.py sandbox_pay`: drive payments without a browser."""

from __future__ import annotations

import re
import uuid
from io import StringIO
from urllib.parse import parse_qsl

import pytest
from django.core.management import CommandError, call_command, load_command_class

from sandbox.models import IpnDelivery, LedgerEntry, SandboxAccount, SandboxOrder, SandboxPayment
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
    assert LedgerEntry.objects.get().value_int == 10_000_000  # credited
    assert SandboxPayment.objects.count() == 1
    # 0.1 of 0.4 BTC: the confirmed figures in a partial IPN, never a paid one.
    deliveries = list(IpnDelivery.objects.order_by("id"))
    assert [d.status for d in deliveries] == ["partial", "partial"]
    assert "&amount_pending=0&amount_valid=10000000&amount_total=10000000" in deliveries[1].body
    assert "order status: open" in output
    assert "the IPN is partial, not paid" in output


def test_paid_then_pays_exactly_what_is_missing(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000)
    run(str(order.transaction), "--status", "partial", "--amount-int", "10000000")
    sent = SandboxPayment.objects.get()
    run(str(order.transaction), "--status", "paid", "--payment-id", str(sent.payment_id))

    output = run(str(order.transaction), "--status", "paid")

    rest = SandboxPayment.objects.get(method="account")
    assert rest.amount_int == 30_000_000
    assert "0.30000000" in output and "order status: paid" in output
    assert "&status=paid&amount=30000000&" in IpnDelivery.objects.get(payment=rest).body
    assert [e.balance_int for e in LedgerEntry.objects.order_by("index")] == [
        10_000_000,
        40_000_000,
    ]


@pytest.mark.parametrize(
    ("amount", "sent"),
    [
        ([], 40_000_000),
        (["--amount", "0.2"], 20_000_000),
        (["--amount-int", "60000000"], 60_000_000),
    ],
)
def test_partial_sends_any_amount(account: SandboxAccount, amount: list[str], sent: int) -> None:
    order = make_order(account, amount_int=40_000_000)

    output = run(str(order.transaction), "--status", "partial", *amount)

    payment = SandboxPayment.objects.get()
    assert (payment.status, payment.method, payment.amount_total) == ("partial", "bitcoin", sent)
    assert not LedgerEntry.objects.exists()
    assert "order status: open" in output


@pytest.mark.parametrize(
    "args",
    [
        ["--status", "paid", "--amount-int", "123"],
        ["--status", "paid", "--amount", "0.5"],
        ["--status", "cancelled", "--amount-int", "123"],
    ],
)
def test_an_amount_is_refused_where_the_gateway_sets_it(
    account: SandboxAccount, args: list[str]
) -> None:
    order = make_order(account, amount_int=40_000_000, multipay=True)

    with pytest.raises(CommandError, match=r"pays exactly what the order needs, 0\.40000000"):
        run(str(order.transaction), *args)
    assert not SandboxPayment.objects.exists()
    assert not IpnDelivery.objects.exists()


def test_cancelled(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000)

    output = run(str(order.transaction), "--status", "cancelled")

    assert [(p.status, p.amount_int) for p in SandboxPayment.objects.all()] == [("cancelled", 0)]
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
        (["{tx}", "--status", "partial", "--payment-id", "x"], "--payment-id goes with"),
        (["{tx}"], "one of the arguments --status --wrong is required"),
        (["{tx}", "--status", "paid", "--wrong", "zero-amount"], "not allowed with"),
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


# --- Deliberately wrong IPNs: --wrong ----------------------------------------------


def wrong(order: SandboxOrder, kind: str, *args: str) -> tuple[str, IpnDelivery]:
    """Send a wrong IPN; check it paid and credited nothing; return the output and delivery."""
    status = order.status
    output = run(str(order.transaction), "--wrong", kind, *args)
    delivery = IpnDelivery.objects.get()
    assert delivery.payment is None  # no payment behind it
    assert (delivery.url, delivery.attempts, delivery.delivered_at) == (order.ipn, 0, None)
    assert delivery.next_attempt_at is not None  # due now, like any IPN
    assert not SandboxPayment.objects.exists()
    assert not LedgerEntry.objects.exists()
    order.refresh_from_db()
    assert order.status == status
    assert "deliberately wrong IPN" in output and "nothing paid or credited" in output
    assert delivery.body in output
    return output, delivery


def fields(delivery: IpnDelivery) -> list[tuple[str, str]]:
    return parse_qsl(delivery.body, keep_blank_values=True)


def test_wrong_underpaid_paid_is_half_the_price_by_default(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000)

    _, delivery = wrong(order, "underpaid-paid")

    assert delivery.status == "paid"
    sent = fields(delivery)
    assert [name for name, _ in sent] == [
        "id", "payment_id", "status", "amount", "currency", "method", "date", "data",
    ]  # fmt: skip
    values = dict(sent)
    assert values["id"] == str(order.transaction)
    assert (values["status"], values["amount"], values["currency"]) == ("paid", "20000000", "BTC")
    assert values["method"] == "MTGOXBTC" and values["data"] == "order-42"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", values["date"])
    assert uuid.UUID(values["payment_id"])  # a payment id the gateway never recorded


def test_wrong_underpaid_paid_with_an_amount(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000)

    _, delivery = wrong(order, "underpaid-paid", "--amount-int", "1")

    assert dict(fields(delivery))["amount"] == "1"


@pytest.mark.parametrize("amount", ["40000000", "50000000"])
def test_wrong_underpaid_paid_must_be_below_the_price(account: SandboxAccount, amount: str) -> None:
    order = make_order(account, amount_int=40_000_000)

    with pytest.raises(CommandError, match="below the price"):
        run(str(order.transaction), "--wrong", "underpaid-paid", "--amount-int", amount)
    assert not IpnDelivery.objects.exists()


def test_wrong_zero_amount(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000)

    _, delivery = wrong(order, "zero-amount")

    assert delivery.status == "paid"
    assert ("amount", "0") in fields(delivery)
    assert "&status=paid&amount=0&currency=BTC&method=MTGOXBTC&date=" in delivery.body


def test_wrong_missing_amount(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000, data="")

    _, delivery = wrong(order, "missing-amount")

    assert delivery.status == "paid"
    assert [name for name, _ in fields(delivery)] == [
        "id", "payment_id", "status", "currency", "method", "date",
    ]  # fmt: skip


def test_wrong_inconsistent_partial(account: SandboxAccount) -> None:
    order = make_order(account, amount_int=40_000_000)

    _, delivery = wrong(order, "inconsistent-partial")

    assert delivery.status == "partial"
    values = {name: value for name, value in fields(delivery) if name.startswith("amount_")}
    assert values == {
        "amount_pending": "40000000",
        "amount_valid": "40000000",
        "amount_total": "40000000",
    }
    pending, valid, total = (int(values[f"amount_{n}"]) for n in ("pending", "valid", "total"))
    assert pending + valid != total


def test_a_wrong_ipn_on_a_paid_order_changes_nothing_at_the_gateway(
    account: SandboxAccount,
) -> None:
    order = make_order(account, amount_int=40_000_000)
    run(str(order.transaction), "--status", "paid")

    run(str(order.transaction), "--wrong", "zero-amount")

    assert SandboxPayment.objects.count() == 1
    assert LedgerEntry.objects.count() == 1
    assert [d.payment is None for d in IpnDelivery.objects.order_by("id")] == [False, True]
    order.refresh_from_db()
    assert order.status == "paid"


@pytest.mark.parametrize(
    ("args", "order_fields", "message"),
    [
        (["--wrong", "zero-amount", "--amount-int", "5"], {}, "takes no amount"),
        (["--wrong", "inconsistent-partial", "--amount", "0.1"], {}, "takes no amount"),
        (["--wrong", "zero-amount"], {"ipn": ""}, "no ipn URL"),
        (["--wrong", "zero-amount", "--payment-id", "x"], {}, "--payment-id goes with"),
        (["--wrong", "overpaid"], {}, "invalid choice"),
    ],
)
def test_wrong_errors(
    account: SandboxAccount, args: list[str], order_fields: dict[str, str], message: str
) -> None:
    order = make_order(account, **order_fields)

    with pytest.raises(CommandError, match=message):
        run(str(order.transaction), *args)
    assert not IpnDelivery.objects.exists()


def test_the_help_names_the_rules_and_every_wrong_ipn() -> None:
    parser = load_command_class("sandbox", "sandbox_pay").create_parser("manage.py", "sandbox_pay")
    text = " ".join(parser.format_help().split())

    assert "pays exactly what the order still needs" in text
    assert "only once confirmed money covers the price" in text
    for kind in ("underpaid-paid", "zero-amount", "missing-amount", "inconsistent-partial"):
        assert f"{kind}: a `" in text
