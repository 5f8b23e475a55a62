"""Private reads: 1/generic/private/info and 1/generic/private/wallet/history (paged)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from sandbox import services
from sandbox.models import LedgerEntry, SandboxAccount
from tests.sandbox.conftest import Api, assert_error, make_order

pytestmark = pytest.mark.django_db

INFO = "1/generic/private/info"
HISTORY = "1/generic/private/wallet/history"


def test_info_shape(api: Api, account: SandboxAccount) -> None:
    order = make_order(account, amount_int=30_000_000)
    services.payment_pay(order=order, method="account")

    response = api.call(INFO)

    assert response.status_code == 200, response.content
    info = response.json()["return"]
    assert set(info) == {
        "Login", "Index", "Id", "Rights", "Language", "Created", "Last_Login", "Wallets",
        "Trade_Fee",
    }  # fmt: skip
    assert info["Login"] == account.login
    assert uuid.UUID(info["Id"]) == account.public_id
    assert "merchant" in info["Rights"]
    assert info["Last_Login"]  # this very call
    assert info["Wallets"]["BTC"] == {
        "Balance": {
            "value": "0.30000000",
            "value_int": "30000000",
            "display": "0.30000000\u00a0BTC",
            "currency": "BTC",
        },
        "Operations": 1,
    }


def test_info_of_a_new_account_has_an_empty_btc_wallet(api: Api) -> None:
    info = api.call(INFO).json()["return"]

    assert info["Wallets"]["BTC"]["Balance"]["value_int"] == "0"
    assert info["Wallets"]["BTC"]["Operations"] == 0


def pay_many(account: SandboxAccount, count: int) -> list[int]:
    """`count` orders, each of its own price, each paid by a gateway account."""
    amounts = [1_000 + n for n in range(count)]
    for amount in amounts:
        order = make_order(account, amount_int=amount, ipn="")
        services.payment_pay(order=order, method="account")
    return amounts


def test_history_entries_link_payment_and_transaction(api: Api, account: SandboxAccount) -> None:
    order = make_order(account, amount_int=12_345_678)
    payment = services.payment_pay(order=order, method="account")

    body = api.call(HISTORY, {"currency": "BTC"}).json()["return"]

    assert body["records"] == "1"
    assert (body["current_page"], body["max_page"], body["max_results"]) == (1, 1, 50)
    [entry] = body["result"]
    assert entry["Index"] == "1"
    assert entry["Type"] == "in"
    assert payment.paid_at is not None
    assert entry["Date"] == int(payment.paid_at.timestamp())
    assert entry["Value"]["value_int"] == "12345678"
    assert entry["Balance"]["value_int"] == "12345678"
    assert entry["Link"] == [str(payment.payment_id), "Money_Merchant", str(order.transaction)]
    assert isinstance(entry["Info"], str)


def test_history_is_paged_fifty_per_page_oldest_first(api: Api, account: SandboxAccount) -> None:
    amounts = pay_many(account, 120)

    pages = [
        api.call(HISTORY, {"currency": "BTC", "page": str(n)}).json()["return"] for n in (1, 2, 3)
    ]

    assert [len(page["result"]) for page in pages] == [50, 50, 20]
    assert {page["records"] for page in pages} == {"120"}
    assert {page["max_page"] for page in pages} == {3}
    assert [page["current_page"] for page in pages] == [1, 2, 3]
    entries = [entry for page in pages for entry in page["result"]]
    assert [int(e["Index"]) for e in entries] == list(range(1, 121))
    assert [int(e["Value"]["value_int"]) for e in entries] == amounts
    balances = [int(e["Balance"]["value_int"]) for e in entries]
    assert balances[-1] == sum(amounts)
    assert balances == sorted(balances)
    # The page defaults to 1; a page past the end is empty.
    assert api.call(HISTORY, {"currency": "BTC"}).json()["return"]["result"] == pages[0]["result"]
    beyond = api.call(HISTORY, {"currency": "BTC", "page": "4"}).json()["return"]
    assert beyond["result"] == [] and beyond["max_page"] == 3


def test_history_filters(api: Api, account: SandboxAccount) -> None:
    pay_many(account, 3)
    first, second, third = LedgerEntry.objects.order_by("index")
    base = datetime(2013, 1, 1, tzinfo=UTC)
    for n, entry in enumerate((first, second, third)):
        LedgerEntry.objects.filter(pk=entry.pk).update(date=base + timedelta(days=n))

    def indexes(**query: str) -> list[str]:
        body = api.call(HISTORY, {"currency": "BTC", **query}).json()["return"]
        return [entry["Index"] for entry in body["result"]]

    start = int((base + timedelta(days=1)).timestamp())
    assert indexes(date_start=str(start)) == ["2", "3"]
    assert indexes(date_end=str(start)) == ["1", "2"]
    assert indexes(type="in") == ["1", "2", "3"]
    assert indexes(type="out") == []
    assert indexes(trade_id="1234") == []  # no trades in the sandbox
    assert indexes(currency="USD") == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": "BTC", "page": "0"}, "page"),
        ({"currency": "BTC", "page": "two"}, "page"),
        ({"currency": "BTC", "type": "gift"}, "type"),
        ({"currency": "BTC", "date_start": "yesterday"}, "date_start"),
        ({"currency": "BTC", "date_end": "-1"}, "date_end"),
        ({"currency": "BTC", "trade_id": "x"}, "trade_id"),
    ],
)
def test_history_parameters_are_checked(
    api: Api, account: SandboxAccount, query: dict[str, str], named: str
) -> None:
    assert_error(api.call(HISTORY, query), "invalid_parameter", 400, f"'{named}'")
    account.refresh_from_db()
    assert account.last_nonce == 0


def test_history_also_answers_on_the_wikis_fallback_path(api: Api) -> None:
    response = api.call("1/generic/wallet/history", {"currency": "BTC"})
    assert response.json()["return"]["records"] == "0"
