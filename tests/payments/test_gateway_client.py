"""The gateway client against real HTTP servers on 127.0.0.1, scripted reply by reply.

Nothing in the transport is mocked: requests talks to a ThreadingHTTPServer
that records the exact bytes and headers it received.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from payments.exceptions import AmountError, UnknownCurrency
from payments.gateway import (
    GatewayClient,
    GatewayConfig,
    GatewayError,
    GatewayProtocolError,
    GatewayRejected,
    GatewayTimeout,
    GatewayUnavailable,
    ValueObject,
)
from payments.gateway.signing import InvalidSecret

# A copy of the protocol's published signing vectors (checked with `openssl dgst`),
# kept in the repository so that any checkout can run the tests.
VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "signing-vectors.json"
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["cases"]
USD_VECTOR = next(case for case in VECTORS if case["name"] == "order_create_usd")
JPY_VECTOR = next(case for case in VECTORS if case["name"] == "order_create_jpy_multipay")
KEY = USD_VECTOR["rest_key"]
SECRET = USD_VECTOR["secret"]
USER_AGENT = "merchant-payments-tests/1.0"
FORM = "application/x-www-form-urlencoded"
TRANSACTION = "5b5a6d2e-1c3f-4f0e-8a8b-2f7c9d1e0a11"
PAYMENT_ID = "9e8d7c6b-5a49-4837-a2b1-c0d9e8f7a6b5"
ORDER_PATH = "/api/1/generic/private/merchant/order/create"


# --- a scripted gateway ---------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    hang_up: bool = False  # close the connection without answering


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode("ascii"), keep_blank_values=True))


Script = Reply | Callable[[Received], Reply]


@dataclass
class ScriptedGateway:
    port: int = 0
    script: list[Script] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def then(self, *replies: Script) -> ScriptedGateway:
        self.script.extend(replies)
        return self

    def answer(self, received: Received) -> Reply:
        with self.lock:
            self.received.append(received)
            step = self.script.pop(0) if self.script else Reply(599, b"nothing scripted")
        return step(received) if callable(step) else step


def success(payload: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps({"result": "success", "return": payload}).encode())


def error(message: str, token: str | None = None, status: int = 403) -> Reply:
    envelope = {"result": "error", "error": message}
    if token is not None:
        envelope["token"] = token
    return Reply(status, json.dumps(envelope).encode())


def stale_nonce() -> Reply:
    return error("Invalid nonce", "login_error_invalid_nonce")


def handler_for(gateway: ScriptedGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = gateway.answer(Received(self.command, self.path, headers, body))
            time.sleep(reply.delay)
            if reply.hang_up:
                self.close_connection = True
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output quiet

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out leaves a broken pipe behind: expected here


@pytest.fixture
def gateway() -> Iterator[ScriptedGateway]:
    scripted = ScriptedGateway()
    server = QuietServer(("127.0.0.1", 0), handler_for(scripted))
    scripted.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield scripted
    server.shutdown()
    server.server_close()
    thread.join()


# --- the client's collaborators -------------------------------------------------------


class MemoryNonces:
    """An in-memory increasing nonce source that remembers what it handed out."""

    def __init__(self, start: int = 1_353_558_000_000_001) -> None:
        self.next = start
        self.issued: list[int] = []

    def __call__(self) -> int:
        self.issued.append(self.next)
        self.next += 1
        return self.issued[-1]


class MemoryCache:
    """A dict cache with a clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.items: dict[str, tuple[Any, float]] = {}
        self.timeouts: list[float | None] = []

    def get(self, key: str) -> Any:
        value, expires = self.items.get(key, (None, 0.0))
        return value if self.now < expires else None

    def set(self, key: str, value: Any, timeout: float | None) -> None:
        self.timeouts.append(timeout)
        self.items[key] = (value, float("inf") if timeout is None else self.now + timeout)


@dataclass
class Harness:
    client: GatewayClient
    nonces: MemoryNonces
    cache: MemoryCache


@pytest.fixture
def make_client(gateway: ScriptedGateway) -> Iterator[Callable[..., Harness]]:
    made: list[GatewayClient] = []

    def make(url: str | None = None, secret: str = SECRET, **config: Any) -> Harness:
        nonces, cache = MemoryNonces(), MemoryCache()
        settings = {"connect_timeout": 1.0, "read_timeout": 2.0, "nonce_retries": 8, **config}
        client = GatewayClient(
            GatewayConfig(
                api_url=url or gateway.url,
                api_key=KEY,
                api_secret=secret,
                user_agent=USER_AGENT,
                **settings,
            ),
            nonce_source=nonces,
            cache=cache,
        )
        made.append(client)
        return Harness(client, nonces, cache)

    yield make
    for client in made:
        client.close()


def expected_sign(body: bytes, secret: str) -> str:
    """The protocol's scheme, computed here independently of payments.gateway.signing."""
    digest = hmac.new(base64.b64decode(secret), body, hashlib.sha512).digest()
    return base64.b64encode(digest).decode()


def order_kwargs(**overrides: Any) -> dict[str, Any]:
    return {
        "currency": "USD",
        "amount_int": 1_250_000,
        "return_success": "https://shop.example/ok",
        "return_failure": "https://shop.example/ko",
        **overrides,
    }


ORDER_CREATED = {
    "transaction": TRANSACTION,
    "payment_url": f"http://sandbox.test/pay/{TRANSACTION}",
}


def value(amount: str, amount_int: int, currency: str = "USD") -> dict[str, str]:
    return {
        "value": amount,
        "value_int": str(amount_int),
        "display": f"{amount} {currency}",
        "currency": currency,
    }


TICKER_FIELDS = ("high", "low", "avg", "vwap", "last_all", "last_local", "last_orig", "last")
TICKER = {
    **{name: value("12.50000", 1_250_000) for name in TICKER_FIELDS},
    "buy": value("12.40000", 1_240_000),
    "sell": value("12.60000", 1_260_000),
    "vol": value("1234.50000000", 123_450_000_000, "BTC"),
}


def wallet_entry(index: int, amount_int: int = 12_345_678) -> dict[str, Any]:
    return {
        "Index": str(index),
        "Date": 1_350_132_945,
        "Type": "in",
        "Value": value(f"{Decimal(amount_int).scaleb(-8):f}", amount_int, "BTC"),
        "Balance": value("1.00000000", 100_000_000, "BTC"),
        "Info": f"Payment {PAYMENT_ID}",
        "Link": [PAYMENT_ID, "Money_Merchant", TRANSACTION],
    }


def history(entries: list[dict[str, Any]], page: int = 1, max_page: int = 1) -> dict[str, Any]:
    return {
        "records": str(len(entries)),
        "result": entries,
        "current_page": page,
        "max_page": max_page,
        "max_results": 50,
    }


# --- the bytes on the wire ------------------------------------------------------------


def test_order_create_sends_exactly_the_signed_bytes_of_the_protocol_vector(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(ORDER_CREATED))
    harness = make_client()

    harness.client.order_create(
        currency="USD",
        amount_int=1_250_000,
        return_success="https://shop.example/checkout/42/success/",
        return_failure="https://shop.example/checkout/42/failure/",
        description="Order #42 — 2 mugs",
        ipn="https://shop.example/payments/ipn/",
        data="order=42",
    )

    [received] = gateway.received
    assert received.method == "POST"
    assert received.path == ORDER_PATH
    assert received.body == USD_VECTOR["body"].encode("utf-8")
    assert received.headers["rest-key"] == KEY
    assert received.headers["rest-sign"] == USD_VECTOR["rest_sign"]
    assert received.headers["rest-sign"] == expected_sign(received.body, SECRET)
    assert received.headers["user-agent"] == USER_AGENT
    assert received.headers["content-type"] == FORM
    assert received.headers["content-length"] == str(len(received.body))


def test_flags_are_sent_as_1_and_omitted_optionals_leave_no_field(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(ORDER_CREATED))
    harness = make_client(secret=JPY_VECTOR["secret"])
    harness.nonces.next = 1_353_558_000_000_002

    harness.client.order_create(
        currency="JPY",
        amount_int=1_500_000,
        return_success="http://127.0.0.1:8000/ok",
        return_failure="http://127.0.0.1:8000/ko",
        multipay=True,
    )

    [received] = gateway.received
    assert received.body == JPY_VECTOR["body"].encode()
    assert received.headers["rest-sign"] == JPY_VECTOR["rest_sign"]


def test_every_flag_on_is_sent_in_the_protocol_order(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(ORDER_CREATED))
    make_client().client.order_create(
        **order_kwargs(email=True, autosell=True, multipay=True, instant_only=True)
    )
    fields = list(gateway.received[0].form.items())
    assert fields[-4:] == [
        ("email", "1"),
        ("autosell", "1"),
        ("multipay", "1"),
        ("instant_only", "1"),
    ]


def test_an_order_with_defaults_sends_only_the_required_fields(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(ORDER_CREATED))
    make_client().client.order_create(**order_kwargs())
    assert list(gateway.received[0].form) == [
        "nonce",
        "currency",
        "amount_int",
        "return_success",
        "return_failure",
    ]


def test_a_decimal_amount_is_sent_as_the_exact_amount_int(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(ORDER_CREATED), success(ORDER_CREATED))
    harness = make_client()
    harness.client.order_create(**order_kwargs(amount_int=None, amount=Decimal("12.5")))
    harness.client.order_create(**order_kwargs(amount_int=None, amount="0.001", currency="JPY"))
    forms = [received.form for received in gateway.received]
    assert [form["amount_int"] for form in forms] == ["1250000", "1"]
    assert all("amount" not in form for form in forms)


@pytest.mark.parametrize(
    ("overrides", "exception"),
    [
        ({"amount_int": 12.5}, TypeError),
        ({"amount_int": True}, TypeError),
        ({"amount_int": 0}, AmountError),
        ({"amount_int": -5}, AmountError),
        ({"amount_int": 2**63}, AmountError),
        ({"amount_int": None}, ValueError),
        ({"amount": Decimal("12.5")}, ValueError),  # both amount and amount_int
        ({"amount_int": None, "amount": 12.5}, AmountError),
        ({"amount_int": None, "amount": "12.123456"}, AmountError),
        ({"currency": "XYZ"}, UnknownCurrency),
        ({"return_success": ""}, ValueError),
    ],
)
def test_bad_order_arguments_raise_before_anything_is_sent(
    gateway: ScriptedGateway,
    make_client: Callable[..., Harness],
    overrides: dict[str, Any],
    exception: type[Exception],
) -> None:
    harness = make_client()
    with pytest.raises(exception):
        harness.client.order_create(**order_kwargs(**overrides))
    assert gateway.received == []
    assert harness.nonces.issued == []


def test_public_calls_carry_no_key_signature_or_nonce(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(
        success(TICKER),
        success(
            {"currency": "EUR", "name": "Euro", "symbol": "€", "decimals": "5", "virtual": "N"}
        ),
    )
    harness = make_client()
    harness.client.ticker("USD")
    harness.client.currency_info("EUR")

    ticker, currency = gateway.received
    assert (ticker.path, ticker.body) == ("/api/1/BTCUSD/ticker", b"")
    assert (currency.path, currency.body) == ("/api/1/generic/currency", b"currency=EUR")
    for received in (ticker, currency):
        assert received.method == "POST"
        assert received.headers["content-type"] == FORM
        assert received.headers["user-agent"] == USER_AGENT
        assert "rest-key" not in received.headers
        assert "rest-sign" not in received.headers
    assert harness.nonces.issued == []


# --- parsing success replies into typed results ----------------------------------------


def test_order_create_returns_the_transaction_as_uuid_and_the_payment_url(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(ORDER_CREATED))
    created = make_client().client.order_create(**order_kwargs())
    assert created.transaction == uuid.UUID(TRANSACTION)
    assert created.payment_url == ORDER_CREATED["payment_url"]


def test_ticker_values_are_decimals_even_when_the_gateway_writes_json_numbers(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    # A bare 0.1 would be 0.1000000000000000055511151231257827 as a float.
    raw = json.dumps({"result": "success", "return": TICKER}).replace('"12.40000"', "0.1")
    gateway.then(Reply(200, raw.encode()))

    ticker = make_client().client.ticker("USD")

    assert ticker.buy == ValueObject(Decimal("0.1"), 1_240_000, "12.40000 USD", "USD")
    assert type(ticker.buy.value) is Decimal
    assert ticker.sell.value == Decimal("12.60000")
    assert ticker.vol == ValueObject(
        Decimal("1234.50000000"), 123_450_000_000, "1234.50000000 BTC", "BTC"
    )


def test_currency_info_parses_decimals_and_the_virtual_flag(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(
        success(
            {
                "currency": "BTC",
                "name": "Bitcoin",
                "symbol": "BTC",
                "decimals": "8",
                "display": "1,234.56789012 BTC",
                "symbol_position": "after",
                "virtual": "Y",
            }
        ),
    )
    info = make_client().client.currency_info("BTC")
    assert (info.currency, info.name, info.decimals, info.virtual) == ("BTC", "Bitcoin", 8, True)
    assert info.symbol_position == "after"


def test_info_parses_the_account_and_its_wallets(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    account_id = "2c9a0f1e-7b3d-4e5f-8a6b-9c0d1e2f3a4b"
    gateway.then(
        success(
            {
                "Login": "merchant",
                "Index": "42",
                "Id": account_id,
                "Rights": ["get_info", "merchant"],
                "Language": "en_US",
                "Created": "2012-10-13 12:55:45",
                "Last_Login": "",  # never logged in
                "Wallets": {
                    "BTC": {"Balance": value("1.00000000", 100_000_000, "BTC"), "Operations": 3},
                    # str(Decimal) of zero: exponent notation, still an exact amount.
                    "USD": {"Balance": value("0E-5", 0), "Operations": 0},
                },
                "Trade_Fee": 0.6,
            }
        )
    )

    info = make_client().client.info()

    assert info.login == "merchant"
    assert info.id == uuid.UUID(account_id)
    assert info.index == 42
    assert info.rights == ("get_info", "merchant")
    assert info.created == datetime(2012, 10, 13, 12, 55, 45, tzinfo=UTC)
    assert info.trade_fee == Decimal("0.6")
    assert info.wallets["BTC"].operations == 3
    assert info.balance("BTC") == ValueObject(
        Decimal("1.00000000"), 100_000_000, "1.00000000 BTC", "BTC"
    )
    assert info.last_login is None
    assert info.balance("USD") == ValueObject(Decimal(0), 0, "0E-5 USD", "USD")
    assert info.balance("EUR") is None
    assert gateway.received[0].path == "/api/1/generic/private/info"
    assert list(gateway.received[0].form) == ["nonce"]


def test_wallet_history_sends_its_filters_and_parses_entries(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    fee = {**wallet_entry(8), "Type": "fee", "Link": ["", "Money_Merchant", ""]}
    gateway.then(success(history([wallet_entry(7), fee], page=2, max_page=3)))

    page = make_client().client.wallet_history(
        currency="BTC",
        type="in",
        date_start=datetime(2012, 10, 13, tzinfo=UTC),
        date_end=1_350_200_000,
        page=2,
    )

    assert gateway.received[0].path == "/api/1/generic/private/wallet/history"
    assert list(gateway.received[0].form.items())[1:] == [
        ("currency", "BTC"),
        ("type", "in"),
        ("date_start", "1350086400"),
        ("date_end", "1350200000"),
        ("page", "2"),
    ]
    assert (page.records, page.current_page, page.max_page, page.max_results) == (2, 2, 3, 50)
    entry, fee_entry = page.entries
    assert entry.index == 7
    assert entry.date == datetime(2012, 10, 13, 12, 55, 45, tzinfo=UTC)
    assert entry.type == "in"
    assert entry.value == ValueObject(Decimal("0.12345678"), 12_345_678, "0.12345678 BTC", "BTC")
    assert entry.link == (PAYMENT_ID, "Money_Merchant", TRANSACTION)
    assert entry.merchant_link is not None
    assert entry.merchant_link.payment_id == PAYMENT_ID
    assert entry.merchant_link.transaction == TRANSACTION
    assert (fee_entry.type, fee_entry.merchant_link) == ("fee", None)


def test_naive_history_dates_are_refused(make_client: Callable[..., Harness]) -> None:
    with pytest.raises(ValueError, match="timezone"):
        make_client().client.wallet_history(currency="BTC", date_start=datetime(2012, 10, 13))


def test_iter_wallet_history_walks_every_page_in_order(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(
        success(history([wallet_entry(1), wallet_entry(2)], page=1, max_page=3)),
        success(history([wallet_entry(3), wallet_entry(4)], page=2, max_page=3)),
        success(history([wallet_entry(5)], page=3, max_page=3)),
    )
    harness = make_client()

    entries = list(harness.client.iter_wallet_history(currency="BTC", type="in"))

    assert [entry.index for entry in entries] == [1, 2, 3, 4, 5]
    assert [received.form["page"] for received in gateway.received] == ["1", "2", "3"]
    assert [int(received.form["nonce"]) for received in gateway.received] == harness.nonces.issued
    assert len(set(harness.nonces.issued)) == 3


def test_iter_wallet_history_stops_on_an_empty_page(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(history([], page=1, max_page=5)))
    assert list(make_client().client.iter_wallet_history(currency="BTC")) == []
    assert len(gateway.received) == 1


# --- answers that are not results ----------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "token", "status"),
    [
        (
            error("Bad signature", "login_error_invalid_rest_sign"),
            "login_error_invalid_rest_sign",
            403,
        ),
        (error("Unknown key", "login_error_invalid_rest_key"), "login_error_invalid_rest_key", 403),
        (error("amount_int: must be positive", "invalid_parameter", 400), "invalid_parameter", 400),
        (error("No such method", "unknown_method", 404), "unknown_method", 404),
        (error("Something went wrong"), None, 403),
        # A token that is not the nonce's wins over words that mention a nonce.
        (
            error("bad signature for this nonce", "login_error_invalid_rest_sign"),
            "login_error_invalid_rest_sign",
            403,
        ),
    ],
)
def test_an_error_reply_raises_gateway_rejected_once_without_retry(
    gateway: ScriptedGateway,
    make_client: Callable[..., Harness],
    reply: Reply,
    token: str | None,
    status: int,
) -> None:
    gateway.then(reply, success(ORDER_CREATED))
    with pytest.raises(GatewayRejected) as caught:
        make_client().client.order_create(**order_kwargs())
    assert caught.value.token == token
    assert caught.value.status == status
    assert caught.value.message == json.loads(reply.body)["error"]
    assert len(gateway.received) == 1


def test_an_error_message_never_carries_the_secret_or_the_signature(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(error("Invalid signature", "login_error_invalid_rest_sign"))
    with pytest.raises(GatewayRejected) as caught:
        make_client().client.order_create(**order_kwargs())
    signature = gateway.received[0].headers["rest-sign"]
    text = f"{caught.value} {caught.value!r}"
    assert signature not in text
    assert SECRET not in text


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_is_unavailable_and_not_retried_even_when_it_mentions_the_nonce(
    gateway: ScriptedGateway, make_client: Callable[..., Harness], status: int
) -> None:
    gateway.then(
        error("Invalid nonce", "login_error_invalid_nonce", status), success(ORDER_CREATED)
    )
    with pytest.raises(GatewayUnavailable) as caught:
        make_client().client.order_create(**order_kwargs())
    assert not isinstance(caught.value, GatewayTimeout)
    assert caught.value.status == status
    assert caught.value.may_have_reached_gateway is True
    assert len(gateway.received) == 1


def test_a_refused_connection_is_unavailable_and_certainly_did_not_reach_the_gateway(
    make_client: Callable[..., Harness],
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(GatewayUnavailable) as caught:
        make_client(url=f"http://127.0.0.1:{port}/api/").client.order_create(**order_kwargs())
    assert not isinstance(caught.value, GatewayTimeout)
    assert caught.value.may_have_reached_gateway is False


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listener never accepts and whose backlog is full: connecting times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break  # the backlog is full: SYNs are dropped from now on
        else:
            pytest.skip("this system does not drop connections beyond the listen backlog")
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()


def test_a_connect_timeout_is_unavailable_and_not_a_read_timeout(
    make_client: Callable[..., Harness], full_backlog: int
) -> None:
    harness = make_client(url=f"http://127.0.0.1:{full_backlog}/api/", connect_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable) as caught:
        harness.client.order_create(**order_kwargs())
    assert time.monotonic() - started < 2
    assert not isinstance(caught.value, GatewayTimeout)
    assert caught.value.may_have_reached_gateway is False


def test_a_reply_slower_than_the_read_timeout_is_a_timeout_and_the_post_is_not_resent(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(
        Reply(200, json.dumps({"result": "success", "return": ORDER_CREATED}).encode(), delay=0.6),
        success(ORDER_CREATED),
    )
    harness = make_client(read_timeout=0.2)
    started = time.monotonic()

    with pytest.raises(GatewayTimeout) as caught:
        harness.client.order_create(**order_kwargs())

    assert time.monotonic() - started < 0.55  # gave up at the read timeout, not at the reply
    assert caught.value.may_have_reached_gateway is True
    assert isinstance(caught.value, GatewayUnavailable)
    time.sleep(0.5)  # long enough for a resent request to have arrived
    assert len(gateway.received) == 1
    assert len(harness.nonces.issued) == 1


def test_a_connection_dropped_after_sending_may_have_reached_the_gateway(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(Reply(hang_up=True), success(ORDER_CREATED))
    with pytest.raises(GatewayUnavailable) as caught:
        make_client().client.order_create(**order_kwargs())
    assert caught.value.may_have_reached_gateway is True
    assert len(gateway.received) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b"<html>Welcome</html>"),
        Reply(404, b"<html>Not Found</html>"),
        Reply(200, b""),
        Reply(200, b"\xff\xfe\x00garbage"),
        Reply(200, b"[1, 2]"),
        Reply(200, b'"success"'),
        Reply(200, b'{"result": "maybe", "return": {}}'),
        Reply(200, b'{"return": {}}'),
        Reply(200, b'{"result": "success"}'),
        Reply(404, json.dumps({"result": "success", "return": ORDER_CREATED}).encode()),
        Reply(302, json.dumps({"result": "success", "return": ORDER_CREATED}).encode()),
        Reply(403, b'{"result": "error"}'),
        Reply(403, b'{"result": "error", "error": "x", "token": 7}'),
        Reply(200, b'{"result": "success", "return": {"transaction": NaN}}'),
    ],
    ids=[
        "html",
        "html-404",
        "empty",
        "not-utf8",
        "json-list",
        "json-string",
        "unknown-result",
        "no-result",
        "no-return",
        "success-with-404",
        "success-with-302",
        "error-without-message",
        "token-not-string",
        "nan-literal",
    ],
)
def test_replies_outside_the_envelope_are_protocol_errors(
    gateway: ScriptedGateway, make_client: Callable[..., Harness], reply: Reply
) -> None:
    gateway.then(reply, success(ORDER_CREATED))
    with pytest.raises(GatewayProtocolError, match=r"^Invalid data received"):
        make_client().client.order_create(**order_kwargs())
    assert len(gateway.received) == 1


def _without(data: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: item for key, item in data.items() if key != name}


BAD_TICKER_VALUE = {**TICKER, "buy": {**TICKER["buy"], "value_int": "12.5"}}
BAD_ENTRY = {**wallet_entry(1), "Date": "yesterday"}


@pytest.mark.parametrize(
    ("call", "payload"),
    [
        ("order", _without(ORDER_CREATED, "transaction")),
        ("order", _without(ORDER_CREATED, "payment_url")),
        ("order", {**ORDER_CREATED, "transaction": "not-a-uuid"}),
        ("order", {**ORDER_CREATED, "transaction": 42}),
        ("order", {**ORDER_CREATED, "payment_url": "javascript:alert(1)"}),
        ("order", [ORDER_CREATED]),
        ("ticker", _without(TICKER, "sell")),
        ("ticker", BAD_TICKER_VALUE),
        ("ticker", {**TICKER, "buy": {**TICKER["buy"], "value": "NaN"}}),
        ("ticker", {**TICKER, "buy": {**TICKER["buy"], "value": "12,5"}}),
        ("ticker", {**TICKER, "buy": {**TICKER["buy"], "value": "0x10"}}),
        ("ticker", {**TICKER, "buy": {**TICKER["buy"], "value": "Infinity"}}),
        ("ticker", {**TICKER, "buy": {**TICKER["buy"], "currency": "usd"}}),
        ("ticker", {**TICKER, "buy": "12.5"}),
        (
            "currency",
            {
                "currency": "USD",
                "name": "US Dollar",
                "symbol": "$",
                "decimals": "five",
                "virtual": "N",
            },
        ),
        (
            "currency",
            {
                "currency": "USD",
                "name": "US Dollar",
                "symbol": "$",
                "decimals": "5",
                "virtual": "maybe",
            },
        ),
        ("history", history([BAD_ENTRY])),
        ("history", history([_without(wallet_entry(1), "Value")])),
        ("history", {**history([]), "result": {}}),
        ("history", _without(history([]), "max_page")),
    ],
)
def test_success_replies_of_the_wrong_shape_are_protocol_errors(
    gateway: ScriptedGateway,
    make_client: Callable[..., Harness],
    call: str,
    payload: Any,
) -> None:
    gateway.then(success(payload))
    client = make_client().client
    calls: dict[str, Callable[[], object]] = {
        "order": lambda: client.order_create(**order_kwargs()),
        "ticker": lambda: client.ticker("USD"),
        "currency": lambda: client.currency_info("USD"),
        "history": lambda: client.wallet_history(currency="BTC"),
    }
    with pytest.raises(GatewayProtocolError, match=r"^Invalid data received"):
        calls[call]()


def test_every_failure_is_a_gateway_error() -> None:
    for cls in (GatewayUnavailable, GatewayTimeout, GatewayRejected, GatewayProtocolError):
        assert issubclass(cls, GatewayError)


# --- stale nonces ------------------------------------------------------------------------


def test_a_stale_nonce_is_re_signed_with_a_larger_nonce_until_accepted(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(stale_nonce(), stale_nonce(), success(ORDER_CREATED))
    harness = make_client()

    created = harness.client.order_create(**order_kwargs())

    assert created.transaction == uuid.UUID(TRANSACTION)
    assert len(gateway.received) == 3
    nonces = [int(received.form["nonce"]) for received in gateway.received]
    assert nonces == harness.nonces.issued
    assert nonces == sorted(set(nonces))  # strictly increasing
    for received in gateway.received:
        assert received.headers["rest-sign"] == expected_sign(received.body, SECRET)
        assert _without(received.form, "nonce") == _without(gateway.received[0].form, "nonce")


def test_a_nonce_error_without_token_is_recognised_by_its_message(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(error("Invalid NONCE (must be increasing)"), success(ORDER_CREATED))
    make_client().client.order_create(**order_kwargs())
    assert len(gateway.received) == 2


@pytest.mark.parametrize("retries", [0, 3])
def test_stale_nonces_are_retried_at_most_nonce_retries_times(
    gateway: ScriptedGateway, make_client: Callable[..., Harness], retries: int
) -> None:
    gateway.then(*[stale_nonce() for _ in range(retries + 2)])
    harness = make_client(nonce_retries=retries)
    with pytest.raises(GatewayRejected) as caught:
        harness.client.info()
    assert caught.value.token == "login_error_invalid_nonce"
    assert len(gateway.received) == retries + 1
    assert len(set(harness.nonces.issued)) == retries + 1


def test_a_nonce_source_returning_a_non_int_is_refused(make_client: Callable[..., Harness]) -> None:
    harness = make_client()
    harness.client._nonce_source = lambda: "123"  # type: ignore[assignment,return-value]
    with pytest.raises(ValueError, match="nonce source"):
        harness.client.info()


# --- caching of public calls -------------------------------------------------------------


def test_a_public_call_is_cached_for_cache_seconds(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(TICKER), success(TICKER))
    harness = make_client(cache_seconds=10)

    first = harness.client.ticker("USD")
    harness.cache.now = 9.9
    second = harness.client.ticker("USD")

    assert first == second
    assert len(gateway.received) == 1
    assert harness.cache.timeouts == [10]
    harness.cache.now = 10.1  # expired
    harness.client.ticker("USD")
    assert len(gateway.received) == 2


def test_a_cached_reply_is_parsed_once_and_new_bytes_again(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(TICKER))
    harness = make_client()
    first = harness.client.ticker("USD")
    assert harness.client.ticker("USD") is first  # the same bytes in the cache: not parsed again

    # Another process refreshed the cache with a new price: this one reads it, not its own.
    (key, (content, expires)), *_ = harness.cache.items.items()
    reply = json.loads(content)
    reply["return"]["sell"].update(value="13.00000", value_int="1300000")
    harness.cache.items[key] = (json.dumps(reply).encode(), expires)
    assert harness.client.ticker("USD").sell.value_int == 1_300_000
    assert len(gateway.received) == 1


def test_public_calls_with_other_parameters_are_cached_apart(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    usd = {"currency": "USD", "name": "US Dollar", "symbol": "$", "decimals": "5", "virtual": "N"}
    eur = {**usd, "currency": "EUR", "name": "Euro", "symbol": "€"}
    gateway.then(success(usd), success(eur))
    harness = make_client()
    assert harness.client.currency_info("USD").name == "US Dollar"
    assert harness.client.currency_info("EUR").name == "Euro"
    assert harness.client.currency_info("USD").name == "US Dollar"
    assert harness.client.currency_info("EUR").name == "Euro"
    assert len(gateway.received) == 2


def test_failed_public_calls_are_not_cached(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(
        error("Unknown currency", "invalid_parameter", 400),
        success({**TICKER, "sell": 1}),
        success(TICKER),
    )
    harness = make_client()
    with pytest.raises(GatewayRejected):
        harness.client.ticker("USD")
    with pytest.raises(GatewayProtocolError):
        harness.client.ticker("USD")
    assert harness.client.ticker("USD").sell.value_int == 1_260_000
    assert len(gateway.received) == 3
    assert harness.cache.timeouts == [10]


def test_a_django_cache_works_as_the_cache(
    gateway: ScriptedGateway, make_client: Callable[..., Harness]
) -> None:
    gateway.then(success(TICKER), success(TICKER))
    harness = make_client()
    harness.client._cache = LocMemCache("gateway-tests", {})
    harness.client.ticker("USD")
    harness.client.ticker("USD")
    assert len(gateway.received) == 1


# --- logs and configuration -------------------------------------------------------------


def test_logs_name_the_path_and_status_but_never_the_secret_or_signature(
    gateway: ScriptedGateway, make_client: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    gateway.then(stale_nonce(), success(ORDER_CREATED), Reply(hang_up=True))
    harness = make_client()
    with caplog.at_level(logging.DEBUG):
        harness.client.order_create(**order_kwargs())
        with pytest.raises(GatewayUnavailable):
            harness.client.info()

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "1/generic/private/merchant/order/create: HTTP 403" in logged
    assert "1/generic/private/merchant/order/create: HTTP 200" in logged
    assert "1/generic/private/info" in logged
    assert SECRET not in logged
    for received in gateway.received:
        assert received.headers["rest-sign"] not in logged
        assert received.body.decode() not in logged


def test_the_config_checks_its_values_and_hides_the_secret() -> None:
    base = {
        "api_url": "https://gw.test/api",
        "api_key": KEY,
        "api_secret": SECRET,
        "user_agent": USER_AGENT,
    }
    config = GatewayConfig(**base)
    assert config.api_url == "https://gw.test/api/"
    assert SECRET not in repr(config)
    with pytest.raises(InvalidSecret):
        GatewayConfig(**{**base, "api_secret": "not base64!"})
    for bad in (
        {"api_url": "ftp://gw.test/"},
        {"api_key": ""},
        {"user_agent": " "},
        {"read_timeout": 0},
        {"nonce_retries": -1},
    ):
        with pytest.raises(ValueError):
            GatewayConfig(**{**base, **bad})


@pytest.mark.django_db
def test_the_factory_builds_the_client_from_settings_at_call_time(
    gateway: ScriptedGateway, settings: Any
) -> None:
    from payments.gateway_factory import gateway_client

    settings.GATEWAY_API_URL = gateway.url
    settings.GATEWAY_READ_TIMEOUT = 0.2
    settings.GATEWAY_USER_AGENT = "factory-test/2.0"
    account = {"Login": "m", "Id": str(uuid.uuid4()), "Rights": [], "Wallets": {}}
    gateway.then(success(account), Reply(200, b"{}", delay=0.6))
    before_us = time.time_ns() // 1000

    with gateway_client() as client:
        client.info()
        with pytest.raises(GatewayTimeout):
            client.info()

    first, second = gateway.received
    assert first.headers["rest-key"] == settings.GATEWAY_API_KEY
    assert first.headers["rest-sign"] == expected_sign(first.body, settings.GATEWAY_API_SECRET)
    assert first.headers["user-agent"] == "factory-test/2.0"
    assert before_us <= int(first.form["nonce"]) < int(second.form["nonce"])
