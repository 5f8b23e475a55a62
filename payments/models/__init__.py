"""The payments app's tables, one module per concern."""

from payments.models.nonces import GatewayNonce
from payments.models.notifications import Notification, RejectedNotification
from payments.models.orders import IdempotencyKey, Order, OrderFlag, OrderTransition
from payments.models.payments import Payment

__all__ = (
    "GatewayNonce",
    "IdempotencyKey",
    "Notification",
    "Order",
    "OrderFlag",
    "OrderTransition",
    "Payment",
    "RejectedNotification",
)
