"""The protocol client for the MtGox HTTP API v1 merchant protocol.

Nothing in this package touches the database: it signs, sends, parses and
raises. The nonce source and the cache are handed in by the caller.
"""

from payments.gateway.client import Cache, GatewayClient, GatewayConfig, NonceSource
from payments.gateway.errors import (
    GatewayError,
    GatewayProtocolError,
    GatewayRejected,
    GatewayTimeout,
    GatewayUnavailable,
)
from payments.gateway.results import (
    AccountInfo,
    CurrencyInfo,
    MerchantLink,
    OrderCreated,
    Ticker,
    ValueObject,
    Wallet,
    WalletEntry,
    WalletHistoryPage,
)

__all__ = [
    "AccountInfo",
    "Cache",
    "CurrencyInfo",
    "GatewayClient",
    "GatewayConfig",
    "GatewayError",
    "GatewayProtocolError",
    "GatewayRejected",
    "GatewayTimeout",
    "GatewayUnavailable",
    "MerchantLink",
    "NonceSource",
    "OrderCreated",
    "Ticker",
    "ValueObject",
    "Wallet",
    "WalletEntry",
    "WalletHistoryPage",
]
