"""The service's gateway client against the sandbox gateway, over real HTTP.

A live server (pytest-django's `live_server`, a threaded HTTP server in this
process) runs the project with the sandbox mounted at /sandbox/; the client
is built from settings by `payments.gateway_factory.gateway_client()` and
talks to it through sockets, exactly as it talks to a remote gateway.
Nothing on either side is mocked: requests that reach the server are counted
with Django's `request_started` signal.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.management import call_command
from django.core.signals import request_started

from payments.exceptions import UnknownCurrency
from payments.gateway.client import ORDER_CREATE, GatewayClient, GatewayConfig
from payments.gateway.errors import GatewayRejected
from payments.gateway.results import CurrencyInfo, Ticker, ValueObject
from payments.gateway.signing import sign
from payments.gateway_factory import gateway_client, gateway_config
from payments.models import GatewayNonce
from payments.nonces import nonce_next
from sandbox import currencies
from sandbox.accounts import ensure_configured_account, new_secret
from sandbox.models import LedgerEntry, SandboxAccount, SandboxOrder, SandboxPayment

# The live server runs requests in other threads: they must see committed data.
pytestmark = pytest.mark.django_db(transaction=True)

API_PATH = "/sandbox/api/"


@pytest.fixture
def sandbox_url(live_gateway: str) -> str:
    """The service's gateway settings pointed at the sandbox on the live server."""
    return live_gateway


@pytest.fixture
def server_requests() -> Iterator[list[str]]:
    """Paths of the HTTP requests the live server received during the test (in order)."""
    paths: list[str] = []

    def record(sender: Any, environ: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if environ is not None:
            paths.append(str(environ.get("PATH_INFO", "")))

    request_started.connect(record, weak=False, dispatch_uid="test_client_against_sandbox")
    yield paths
    request_started.disconnect(dispatch_uid="test_client_against_sandbox")


@pytest.fixture
def client(sandbox_url: str) -> Iterator[GatewayClient]:
    with gateway_client() as gateway:
        yield gateway


def api_calls(paths: list[str], method: str) -> int:
    return paths.count(API_PATH + method)


def order_kwargs(url: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "currency": "USD",
        "amount_int": 1_250_000,  # 12.50000 USD
        "return_success": f"{url}/checkout/done?order=7",
        "return_failure": f"{url}/checkout/cancelled?order=7",
    }
    values.update(overrides)
    return values


def client_with(config: GatewayConfig, nonce_source: Callable[[], int]) -> GatewayClient:
    return GatewayClient(config, nonce_source=nonce_source, cache=caches["default"])


def configured_account() -> SandboxAccount:
    return SandboxAccount.objects.get(api_key=uuid.UUID(django_settings.GATEWAY_API_KEY))


# --- order/create ---------------------------------------------------------------------


def test_order_create_returns_a_transaction_and_a_payment_page_that_answers(
    client: GatewayClient, sandbox_url: str
) -> None:
    created = client.order_create(**order_kwargs(sandbox_url))

    assert isinstance(created.transaction, uuid.UUID)
    assert created.payment_url == f"{sandbox_url}/sandbox/pay/{created.transaction}"
    page = requests.get(created.payment_url, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert str(created.transaction) in page.text


def test_the_order_is_stored_at_the_sandbox_with_what_was_sent(
    client: GatewayClient, sandbox_url: str
) -> None:
    sent = order_kwargs(
        sandbox_url,
        currency="EUR",
        amount_int=987_654,
        description="Order 7 at the test shop",
        ipn=f"{sandbox_url}/payments/ipn/",
        data="order-7",
        email=True,
        autosell=False,
        multipay=True,
        instant_only=True,
    )

    created = client.order_create(**sent)

    order = SandboxOrder.objects.get(transaction=created.transaction)
    assert order.account == configured_account()
    assert (order.currency, order.amount_int) == ("EUR", 987_654)
    assert (order.email, order.autosell, order.multipay, order.instant_only) == (
        True,
        False,
        True,
        True,
    )
    assert order.description == "Order 7 at the test shop"
    assert order.ipn == f"{sandbox_url}/payments/ipn/"
    assert order.data == "order-7"
    assert order.return_success == sent["return_success"]
    assert order.return_failure == sent["return_failure"]
    assert order.status == SandboxOrder.Status.OPEN


def test_an_order_without_flags_is_stored_with_every_flag_off(
    client: GatewayClient, sandbox_url: str
) -> None:
    created = client.order_create(**order_kwargs(sandbox_url, currency="BTC", amount_int=5_000))

    order = SandboxOrder.objects.get(transaction=created.transaction)
    assert (order.currency, order.amount_int, order.amount_btc_int) == ("BTC", 5_000, 5_000)
    assert not (order.email or order.autosell or order.multipay or order.instant_only)
    assert (order.description, order.ipn, order.data) == ("", "", "")


# --- authentication -------------------------------------------------------------------


def test_a_wrong_secret_is_rejected_as_an_invalid_signature(
    client: GatewayClient, sandbox_url: str
) -> None:
    client.info()  # provisions the configured account and advances its nonce
    before = configured_account().last_nonce
    wrong = dataclasses.replace(gateway_config(), api_secret=new_secret())

    impostor = client_with(wrong, partial(nonce_next, api_key=wrong.api_key))
    with impostor, pytest.raises(GatewayRejected) as raised:
        impostor.order_create(**order_kwargs(sandbox_url))

    assert raised.value.token == "login_error_invalid_rest_sign"
    assert raised.value.status == 403
    assert configured_account().last_nonce == before  # a rejected request advances nothing
    assert SandboxOrder.objects.count() == 0


def test_an_unknown_key_is_rejected_as_an_invalid_key(sandbox_url: str) -> None:
    unknown = dataclasses.replace(gateway_config(), api_key=str(uuid.uuid4()))

    stranger = client_with(unknown, partial(nonce_next, api_key=unknown.api_key))
    with stranger, pytest.raises(GatewayRejected) as raised:
        stranger.info()

    assert raised.value.token == "login_error_invalid_rest_key"
    assert raised.value.status == 403


# --- nonces -------------------------------------------------------------------------


def test_a_nonce_that_stays_stale_is_retried_a_bounded_number_of_times_then_raised(
    client: GatewayClient, sandbox_url: str, server_requests: list[str]
) -> None:
    first = client.order_create(**order_kwargs(sandbox_url))
    accepted = configured_account().last_nonce
    handed_out: list[int] = []

    def stale() -> int:
        handed_out.append(accepted)  # an old value: the gateway accepted it already
        return accepted

    server_requests.clear()
    stuck = client_with(gateway_config(), stale)
    with stuck, pytest.raises(GatewayRejected) as raised:
        stuck.order_create(**order_kwargs(sandbox_url))

    assert raised.value.token == "login_error_invalid_nonce"
    assert raised.value.status == 403
    retries = django_settings.GATEWAY_NONCE_RETRIES
    assert retries > 0
    # The first attempt and `retries` re-signed ones, each a request to the gateway.
    assert len(handed_out) == retries + 1
    assert api_calls(server_requests, ORDER_CREATE) == retries + 1
    assert list(SandboxOrder.objects.values_list("transaction", flat=True)) == [first.transaction]
    assert configured_account().last_nonce == accepted


def test_a_nonce_that_was_stale_once_is_re_signed_with_a_fresh_one_and_succeeds(
    client: GatewayClient, sandbox_url: str, server_requests: list[str]
) -> None:
    client.info()
    stale_value = configured_account().last_nonce
    values = itertools.chain(
        [stale_value], iter(partial(nonce_next, api_key=client.config.api_key), None)
    )
    handed_out: list[int] = []

    def stale_then_fresh() -> int:
        handed_out.append(next(values))
        return handed_out[-1]

    server_requests.clear()
    with client_with(gateway_config(), stale_then_fresh) as recovering:
        created = recovering.order_create(**order_kwargs(sandbox_url))

    assert len(handed_out) == 2
    assert handed_out[0] == stale_value < handed_out[1]
    assert api_calls(server_requests, ORDER_CREATE) == 2
    assert SandboxOrder.objects.filter(transaction=created.transaction).count() == 1
    assert SandboxOrder.objects.count() == 1
    assert configured_account().last_nonce == handed_out[1]
    assert GatewayNonce.objects.get(api_key=client.config.api_key).last_value == handed_out[1]


# --- parameters -----------------------------------------------------------------------


def test_a_signed_request_without_return_failure_is_an_invalid_parameter(
    client: GatewayClient, sandbox_url: str
) -> None:
    config = gateway_config()
    fields = order_kwargs(sandbox_url)
    del fields["return_failure"]
    body = urlencode(
        [("nonce", str(nonce_next(api_key=config.api_key)))]
        + [(name, str(value)) for name, value in fields.items()]
    ).encode("ascii")

    response = requests.post(
        config.api_url + ORDER_CREATE,
        data=body,
        headers={
            "User-Agent": config.user_agent,
            "Content-Type": "application/x-www-form-urlencoded",
            "Rest-Key": config.api_key,
            "Rest-Sign": sign(body, config.api_secret),
        },
        timeout=10,
    )

    assert response.status_code == 400
    reply = response.json()
    assert (reply["result"], reply["token"]) == ("error", "invalid_parameter")
    assert "return_failure" in reply["error"]
    assert SandboxOrder.objects.count() == 0
    assert configured_account().last_nonce == 0  # the refused call did not spend its nonce


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (
            lambda c, url: c.order_create(**order_kwargs(url, return_success="not-a-url")),
            "return_success",
        ),
        (lambda c, url: c.order_create(**order_kwargs(url, ipn="ftp://shop.example/ipn")), "ipn"),
        (lambda c, url: c.wallet_history(currency="BTC", type="bogus"), "type"),
    ],
    ids=["relative-return_success", "ftp-ipn", "unknown-history-type"],
)
def test_the_client_raises_the_gateways_invalid_parameter_naming_it(
    client: GatewayClient,
    sandbox_url: str,
    call: Callable[[GatewayClient, str], object],
    parameter: str,
) -> None:
    with pytest.raises(GatewayRejected) as raised:
        call(client, sandbox_url)

    assert raised.value.token == "invalid_parameter"
    assert raised.value.status == 400
    assert parameter in raised.value.message
    assert SandboxOrder.objects.count() == 0


def test_the_client_refuses_an_empty_currency_before_sending_anything(
    client: GatewayClient, sandbox_url: str, server_requests: list[str]
) -> None:
    with pytest.raises(UnknownCurrency):
        client.order_create(**order_kwargs(sandbox_url, currency=""))

    assert server_requests == []


# --- typed results ----------------------------------------------------------------------


def test_ticker_parses_into_decimal_value_objects_at_the_sandbox_rate(
    client: GatewayClient,
) -> None:
    ticker = client.ticker("USD")

    assert isinstance(ticker, Ticker)
    expected = currencies.ticker("USD")
    fields = (
        "high",
        "low",
        "avg",
        "vwap",
        "last_all",
        "last_local",
        "last_orig",
        "last",
        "buy",
        "sell",
    )
    for name in fields:
        value: ValueObject = getattr(ticker, name)
        assert value.currency == "USD"
        assert isinstance(value.value, Decimal) and isinstance(value.value_int, int)
        assert value.value_int == int(expected[name]["value_int"])
        assert value.value == Decimal(expected[name]["value"])
        assert value.value == Decimal(value.value_int).scaleb(-5)
    assert ticker.vol.currency == "BTC"
    assert ticker.vol.value_int == int(expected["vol"]["value_int"])
    assert ticker.low.value < ticker.last.value < ticker.high.value


@pytest.mark.parametrize(
    ("currency", "decimals", "virtual"),
    [("USD", 5, False), ("JPY", 3, False), ("BTC", 8, True)],
)
def test_currency_info_parses_decimals_and_the_virtual_flag(
    client: GatewayClient, currency: str, decimals: int, virtual: bool
) -> None:
    info = client.currency_info(currency)

    assert isinstance(info, CurrencyInfo)
    assert (info.currency, info.decimals, info.virtual) == (currency, decimals, virtual)
    assert info.name and info.symbol


def test_info_describes_the_configured_account(client: GatewayClient) -> None:
    info = client.info()

    account = configured_account()
    assert info.login == account.login
    assert info.id == account.public_id
    assert "merchant" in info.rights
    balance = info.balance("BTC")
    assert balance is not None
    assert (balance.currency, balance.value_int, balance.value) == ("BTC", 0, Decimal(0))
    assert info.last_login is not None


def test_a_payment_in_the_sandbox_shows_in_the_wallet_history_and_the_balance(
    client: GatewayClient, sandbox_url: str
) -> None:
    assert client.wallet_history(currency="BTC").entries == []
    created = client.order_create(**order_kwargs(sandbox_url))
    order = SandboxOrder.objects.get(transaction=created.transaction)

    output = io.StringIO()
    call_command("sandbox_pay", str(created.transaction), "--status", "paid", stdout=output)

    payment = SandboxPayment.objects.get(order=order)
    assert str(payment.payment_id) in output.getvalue()
    assert payment.status == SandboxPayment.Status.PAID
    history = client.wallet_history(currency="BTC")
    assert (history.records, history.current_page, history.max_page) == (1, 1, 1)
    [entry] = history.entries
    assert entry.type == "in"
    assert (entry.value.currency, entry.value.value_int) == ("BTC", order.amount_btc_int)
    assert entry.value.value == Decimal(order.amount_btc_int).scaleb(-8)
    assert entry.balance.value_int == order.amount_btc_int
    link = entry.merchant_link
    assert link is not None
    assert (link.payment_id, link.transaction) == (
        str(payment.payment_id),
        str(created.transaction),
    )
    assert entry.index == LedgerEntry.objects.get(payment=payment).index
    assert client.wallet_history(currency="USD").entries == []
    assert list(client.iter_wallet_history(currency="BTC", type="in")) == [entry]
    balance = client.info().balance("BTC")
    assert balance is not None and balance.value_int == order.amount_btc_int


# --- public calls are cached ----------------------------------------------------------------


def test_two_tickers_within_the_cache_time_make_one_request_shared_by_clients(
    client: GatewayClient, server_requests: list[str]
) -> None:
    assert client.config.cache_seconds >= 10

    first = client.ticker("USD")
    second = client.ticker("USD")
    with gateway_client() as another:  # another client (thread, process) shares the cache
        third = another.ticker("USD")

    assert first == second == third
    assert api_calls(server_requests, "1/BTCUSD/ticker") == 1


def test_without_a_cache_time_every_ticker_is_a_request(
    sandbox_url: str, server_requests: list[str]
) -> None:
    config = dataclasses.replace(gateway_config(), cache_seconds=0)

    with client_with(config, partial(nonce_next, api_key=config.api_key)) as uncached:
        first = uncached.ticker("EUR")
        second = uncached.ticker("EUR")

    assert first == second
    assert api_calls(server_requests, "1/BTCEUR/ticker") == 2


def test_the_sandbox_account_is_the_one_of_the_settings(client: GatewayClient) -> None:
    client.info()

    account, created = ensure_configured_account()
    assert not created
    assert str(account.api_key) == django_settings.GATEWAY_API_KEY
    assert account.secret == django_settings.GATEWAY_API_SECRET
    assert account.last_nonce == GatewayNonce.objects.get(api_key=client.config.api_key).last_value
