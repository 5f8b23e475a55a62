"""The client of the gateway's HTTP API v1: sign, send once, parse, raise.

It knows nothing of Django: the configuration, the nonce source (a callable
returning an int that always increases for the key), the cache (anything
with Django-cache-like `get(key)` and `set(key, value, timeout)`) and the call
lock (a callable returning a context manager that is held from taking a nonce
until the reply, so that the key's calls reach the gateway in nonce order) are
handed in. `payments.gateway_factory.gateway_client()` builds one from settings.

Every call is one POST of form-encoded bytes that are built once, signed and
sent as they are. Nothing is retried, except a private call the gateway
refused for a stale nonce: the gateway did nothing then, so it is re-signed
with a fresh nonce and sent again, a bounded number of times.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError

from payments import money
from payments.exceptions import AmountError, UnknownCurrency
from payments.gateway import parsing
from payments.gateway.errors import GatewayRejected, GatewayTimeout, GatewayUnavailable
from payments.gateway.results import (
    AccountInfo,
    CurrencyInfo,
    OrderCreated,
    Ticker,
    WalletEntry,
    WalletHistoryPage,
)
from payments.gateway.sessions import GatewaySession
from payments.gateway.signing import decode_secret, sign

logger = logging.getLogger(__name__)

ORDER_CREATE = "1/generic/private/merchant/order/create"
CURRENCY = "1/generic/currency"
INFO = "1/generic/private/info"
WALLET_HISTORY = "1/generic/private/wallet/history"
STALE_NONCE_TOKEN = "login_error_invalid_nonce"  # noqa: S105 (a protocol token)
FORM = "application/x-www-form-urlencoded"

Params = list[tuple[str, str]]
T = TypeVar("T")
# The public replies last parsed in this process, by cache key, with their bytes: every
# request reads the same bytes from the cache until they expire, and parsing them (a
# ticker's dozen prices to Decimal) costs more than reading them. Results are frozen.
_PARSED: dict[str, tuple[bytes, Any]] = {}


class Cache(Protocol):
    """The part of Django's cache API the client uses."""

    def get(self, key: str, /) -> Any: ...

    def set(self, key: str, value: Any, timeout: float | None, /) -> None: ...


NonceSource = Callable[[], int]
# Held from taking a nonce until the reply, by every process calling with the key.
CallLock = Callable[[], AbstractContextManager[object]]
# Told of every HTTP call: (method path, HTTP status or "timeout"/"error", seconds).
CallObserver = Callable[[str, str, float], None]


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """Where the gateway is, who we are, and how long we wait."""

    api_url: str
    api_key: str
    api_secret: str = field(repr=False)
    user_agent: str
    connect_timeout: float = 3.05
    read_timeout: float = 15.0
    nonce_retries: int = 12
    cache_seconds: float = 10

    def __post_init__(self) -> None:
        if not self.api_url.startswith(("https://", "http://")):
            raise ValueError("the gateway API URL must be http(s)")
        if not self.api_url.endswith("/"):
            # Method paths are relative to the base: ".../api" + "1/..." would be wrong.
            object.__setattr__(self, "api_url", self.api_url + "/")
        if not self.api_key or not self.api_secret:
            raise ValueError("the gateway API key and secret are required")
        decode_secret(self.api_secret)  # InvalidSecret now rather than at the first call
        if not self.user_agent.strip():
            raise ValueError("the gateway refuses requests without a User-Agent")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.nonce_retries < 0 or self.cache_seconds < 0:
            raise ValueError("nonce_retries and cache_seconds cannot be negative")


class GatewayClient:
    """One gateway account's calls. Not shared between threads (requests.Session is not).

    `session` is the caller's (e.g. this thread's, kept between calls:
    payments.gateway.sessions) and is left open by close(); without one the
    client makes its own and closes it. `observer`, when given, is told of every
    HTTP call and its outcome (the service counts them: payments.metrics).
    `call_lock`, when given, is held around each private call's nonce and request:
    calls with one key then never overtake each other's nonce (payments.nonces).
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        nonce_source: NonceSource,
        cache: Cache,
        session: requests.Session | None = None,
        observer: CallObserver | None = None,
        call_lock: CallLock | None = None,
    ) -> None:
        self.config = config
        self._observer = observer
        self._call_lock: CallLock = call_lock or nullcontext
        self._nonce_source = nonce_source
        self._cache = cache
        self._owns_session = session is None
        self._session = session or GatewaySession(config.api_url)

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- methods of the protocol --------------------------------------------

    def order_create(
        self,
        *,
        currency: str,
        return_success: str,
        return_failure: str,
        amount_int: int | None = None,
        amount: Decimal | str | None = None,
        description: str | None = None,
        ipn: str | None = None,
        data: str | None = None,
        email: bool = False,
        autosell: bool = False,
        multipay: bool = False,
        instant_only: bool = False,
    ) -> OrderCreated:
        """Create an order. `amount` (a decimal) is converted exactly and sent as `amount_int`."""
        amount_int = _amount_int(currency, amount_int, amount)
        if not return_success or not return_failure:
            raise ValueError("return_success and return_failure are required")
        params: Params = [
            ("currency", currency),
            ("amount_int", str(amount_int)),
            ("return_success", return_success),
            ("return_failure", return_failure),
        ]
        optional = {"description": description, "ipn": ipn, "data": data}
        params += [(name, value) for name, value in optional.items() if value is not None]
        flags = {
            "email": email,
            "autosell": autosell,
            "multipay": multipay,
            "instant_only": instant_only,
        }
        params += [(name, "1") for name, on in flags.items() if on]
        return parsing.order_created(self._call_private(ORDER_CREATE, params))

    def ticker(self, currency: str) -> Ticker:
        if currency not in money.FIAT_CURRENCIES:
            raise UnknownCurrency(f"no ticker for {currency!r}")
        return self._call_public(f"1/BTC{currency}/ticker", [], parsing.ticker)

    def currency_info(self, currency: str) -> CurrencyInfo:
        money.decimals(currency)  # UnknownCurrency for a code the service does not handle
        return self._call_public(CURRENCY, [("currency", currency)], parsing.currency_info)

    def info(self) -> AccountInfo:
        return parsing.account_info(self._call_private(INFO, []))

    def wallet_history(
        self,
        *,
        currency: str,
        type: str | None = None,
        date_start: datetime | int | None = None,
        date_end: datetime | int | None = None,
        trade_id: str | int | None = None,
        page: int | None = None,
    ) -> WalletHistoryPage:
        """One page (from 1) of the ledger of `currency`, oldest first; dates are unix seconds."""
        money.decimals(currency)
        optional = {
            "type": type,
            "date_start": _unix_seconds(date_start),
            "date_end": _unix_seconds(date_end),
            "trade_id": trade_id,
            "page": page,
        }
        params: Params = [("currency", currency)]
        params += [(name, str(value)) for name, value in optional.items() if value is not None]
        return parsing.wallet_history_page(self._call_private(WALLET_HISTORY, params))

    def iter_wallet_history(
        self,
        *,
        currency: str,
        type: str | None = None,
        date_start: datetime | int | None = None,
        date_end: datetime | int | None = None,
        trade_id: str | int | None = None,
    ) -> Iterator[WalletEntry]:
        """Every entry of the ledger, page after page (one private call per page)."""
        page = 1
        while True:
            result = self.wallet_history(
                currency=currency,
                type=type,
                date_start=date_start,
                date_end=date_end,
                trade_id=trade_id,
                page=page,
            )
            yield from result.entries
            # The page number, not the reply's current_page, drives the loop: it always ends.
            if not result.entries or page >= result.max_page:
                return
            page += 1

    # --- transport ------------------------------------------------------------

    def _call_private(self, path: str, params: Params) -> Any:
        attempt = 0
        while True:
            with self._call_lock():
                body = urllib.parse.urlencode([("nonce", str(self._next_nonce())), *params])
                raw = body.encode("ascii")  # urlencode output is ASCII: signed and sent as is
                signature = sign(raw, self.config.api_secret)
                headers = {"Rest-Key": self.config.api_key, "Rest-Sign": signature}
                try:
                    return parsing.decode_reply(*self._post(path, raw, headers))
                except GatewayRejected as exc:
                    if attempt >= self.config.nonce_retries or not _is_stale_nonce(exc):
                        raise
            # Another call overtook ours (one without the lock: another service on the key, or
            # the lock off): the gateway did nothing, try a newer nonce.
            logger.info("gateway %s: stale nonce, re-signing (retry %d)", path, attempt + 1)
            time.sleep(_retry_delay(attempt))
            attempt += 1

    def _call_public(self, path: str, params: Params, parse: Callable[[Any], T]) -> T:
        raw = urllib.parse.urlencode(params).encode("ascii")
        key = self._cache_key(path, raw)
        cached = self._cache.get(key)
        if isinstance(cached, bytes):
            logger.debug("gateway %s: from cache", path)
            last = _PARSED.get(key)
            if last is not None and last[0] == cached:
                return cast(T, last[1])
            result = parse(parsing.decode_reply(200, cached))
        else:
            status, content = self._post(path, raw, {})
            result = parse(parsing.decode_reply(status, content))
            # The reply's bytes, not the parsed object: the cache may outlive this code's version.
            self._cache.set(key, content, self.config.cache_seconds)
            cached = content
        _PARSED[key] = (cached, result)
        return result

    def _cache_key(self, path: str, raw: bytes) -> str:
        digest = hashlib.sha256(f"{self.config.api_url}{path}?".encode() + raw).hexdigest()
        return f"payments.gateway:{digest}"

    def _next_nonce(self) -> int:
        nonce = self._nonce_source()
        if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce <= 0:
            raise ValueError("the nonce source must return a positive int")
        return nonce

    def _post(self, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Send once; (status, body) of any answer below 500, else GatewayUnavailable."""
        started = time.monotonic()
        try:
            response = self._session.post(
                self.config.api_url + path,
                data=raw,
                headers={"User-Agent": self.config.user_agent, "Content-Type": FORM, **headers},
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                allow_redirects=False,  # a redirected POST would come back as a GET
            )
        except requests.RequestException as exc:
            elapsed = _ms_since(started)
            logger.warning("gateway %s: %s after %.0f ms", path, type(exc).__name__, elapsed)
            error = self._unavailable(path, exc)
            self._observe(
                path, "timeout" if isinstance(error, GatewayTimeout) else "error", elapsed
            )
            raise error from exc
        status = response.status_code
        elapsed = _ms_since(started)
        logger.info("gateway %s: HTTP %d in %.0f ms", path, status, elapsed)
        self._observe(path, str(status), elapsed)
        if status >= 500:
            raise GatewayUnavailable(
                f"gateway answered HTTP {status} to {path}",
                may_have_reached_gateway=True,
                status=status,
            )
        return status, response.content

    def _observe(self, path: str, outcome: str, elapsed_ms: float) -> None:
        if self._observer is not None:
            self._observer(path, outcome, elapsed_ms / 1000)

    def _unavailable(self, path: str, exc: requests.RequestException) -> GatewayUnavailable:
        reason = exc.args[0] if exc.args else None
        if isinstance(exc, requests.ReadTimeout) or isinstance(reason, ReadTimeoutError):
            return GatewayTimeout(f"no reply to {path} within {self.config.read_timeout} s")
        return GatewayUnavailable(
            f"no answer to {path}: {exc}", may_have_reached_gateway=not _never_connected(exc)
        )


def _never_connected(exc: requests.RequestException) -> bool:
    """True only when the request certainly never left: connect timeout or refused connection."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)


def _is_stale_nonce(exc: GatewayRejected) -> bool:
    if exc.token is not None:
        return exc.token == STALE_NONCE_TOKEN
    return "nonce" in exc.message.lower()  # gateways without tokens only say it in words


def _retry_delay(attempt: int) -> float:
    # Exponential backoff with full jitter, capped at 1 s: under a burst of calls on one
    # key the retries spread past the burst instead of racing newer nonces again.
    # (Measured: a 0.2 s total backoff let 2% of 2 x 50 concurrent calls exhaust their
    # retries.) Not a secret, so no CSPRNG.
    return random.uniform(0, min(1.0, 0.01 * 2**attempt))  # noqa: S311


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _amount_int(currency: str, amount_int: int | None, amount: Decimal | str | None) -> int:
    if (amount_int is None) == (amount is None):
        raise ValueError("pass exactly one of amount_int and amount")
    if amount is not None:
        return money.to_int(amount, currency)
    money.decimals(currency)
    if not isinstance(amount_int, int) or isinstance(amount_int, bool):
        raise TypeError("amount_int must be an int")
    if not 0 < amount_int <= money.MAX_AMOUNT_INT:
        raise AmountError("amount_int must be positive and fit in 64 bits")
    return amount_int


def _unix_seconds(value: datetime | int | None) -> int | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("wallet history dates must be timezone-aware")
        return int(value.timestamp())
    return value
