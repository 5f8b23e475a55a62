"""The payments app's tables, one module per concern."""

from payments.models.beat import BeatLease
from payments.models.dashboard import DashboardSummary
from payments.models.health import WorkerHeartbeat
from payments.models.nonces import GatewayNonce
from payments.models.notifications import Notification, RejectedNotification
from payments.models.orders import (
    FlagReview,
    IdempotencyKey,
    Order,
    OrderFlag,
    OrderTransition,
)
from payments.models.payments import Payment
from payments.models.reconciliation import LedgerCheckpoint, ReconciliationRun
from payments.models.resolutions import OrderResolution
from payments.models.shop_events import ShopEvent, ShopEventAttempt, ShopEventDelivery
from payments.models.shops import ApiToken, Shop, ShopMembership
from payments.models.webhook_endpoints import WebhookEndpoint

__all__ = (
    "ApiToken",
    "BeatLease",
    "DashboardSummary",
    "FlagReview",
    "GatewayNonce",
    "IdempotencyKey",
    "LedgerCheckpoint",
    "Notification",
    "Order",
    "OrderFlag",
    "OrderResolution",
    "OrderTransition",
    "Payment",
    "ReconciliationRun",
    "RejectedNotification",
    "Shop",
    "ShopEvent",
    "ShopEventAttempt",
    "ShopEventDelivery",
    "ShopMembership",
    "WebhookEndpoint",
    "WorkerHeartbeat",
)
