"""Typed results of the gateway's methods (shapes in docs/gateway-contract.md).

Amounts are Decimal or int, never float; dates are aware datetimes in UTC.
`payments.gateway.parsing` builds these from the JSON replies.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ValueObject:
    """An amount as the gateway writes it: `{value, value_int, display, currency}`."""

    value: Decimal
    value_int: int
    display: str
    currency: str


@dataclass(frozen=True, slots=True)
class OrderCreated:
    """`merchant/order/create`: the gateway's id of the order and where to send the payer."""

    transaction: uuid.UUID
    payment_url: str


@dataclass(frozen=True, slots=True)
class Ticker:
    """`BTC<CUR>/ticker`: prices of one bitcoin in the currency (`vol` is in BTC)."""

    high: ValueObject
    low: ValueObject
    avg: ValueObject
    vwap: ValueObject
    vol: ValueObject
    last_all: ValueObject
    last_local: ValueObject
    last_orig: ValueObject
    last: ValueObject
    buy: ValueObject
    sell: ValueObject


@dataclass(frozen=True, slots=True)
class CurrencyInfo:
    """`generic/currency`: how the gateway writes a currency."""

    currency: str
    name: str
    symbol: str
    decimals: int
    virtual: bool
    display: str | None = None
    symbol_position: str | None = None


@dataclass(frozen=True, slots=True)
class Wallet:
    """One currency's wallet in `AccountInfo.wallets`."""

    balance: ValueObject
    operations: int


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """`generic/private/info`: the merchant account. `wallets` is keyed by currency code."""

    login: str
    id: uuid.UUID
    rights: tuple[str, ...]
    wallets: Mapping[str, Wallet]
    index: int | None = None
    language: str | None = None
    created: datetime | None = None
    last_login: datetime | None = None
    trade_fee: Decimal | None = None

    def balance(self, currency: str) -> ValueObject | None:
        wallet = self.wallets.get(currency)
        return wallet.balance if wallet else None


# `Link[1]` of a wallet entry that records a merchant payment.
MERCHANT_LINK_KIND = "Money_Merchant"


@dataclass(frozen=True, slots=True)
class MerchantLink:
    """What a merchant payment's ledger entry points at: the payment and its order."""

    payment_id: str
    transaction: str


@dataclass(frozen=True, slots=True)
class WalletEntry:
    """One line of the merchant's ledger."""

    index: int
    date: datetime
    type: str
    value: ValueObject
    balance: ValueObject
    info: str
    link: tuple[str, ...]

    @property
    def merchant_link(self) -> MerchantLink | None:
        """The payment and transaction this entry credits, when it records a merchant payment."""
        if len(self.link) != 3 or self.link[1] != MERCHANT_LINK_KIND:
            return None
        payment_id, _, transaction = self.link
        # Entries that belong to no payment (fees) may carry the kind with empty ids.
        return MerchantLink(payment_id, transaction) if payment_id and transaction else None


@dataclass(frozen=True, slots=True)
class WalletHistoryPage:
    """One page of `generic/private/wallet/history`, oldest entry first."""

    records: int
    entries: list[WalletEntry]
    current_page: int
    max_page: int
    max_results: int
