"""The service's fixed vocabularies, each written once: every user imports it from here.

Plain `TextChoices` (no model, no app registry), so the settings, the metrics,
the admin's filters and the benchmarks can import them too.
"""

from __future__ import annotations

from django.db import models


class Sweep(models.TextChoices):
    """The reconciliation sweeps, in the order `reconcile` and the dashboard list them."""

    APPLY_PENDING = "apply_pending", "apply_pending"
    EXPIRE = "expire", "expire"
    STUCK = "stuck", "stuck"
    LEDGER = "ledger", "ledger"


class IpnApply(models.TextChoices):
    """Who applies a stored IPN (PAYMENTS_IPN_APPLY): the request that stored it, or a worker."""

    REQUEST = "request", "request"
    WORKER = "worker", "worker"


class IpnStatus(models.TextChoices):
    """The `status` of a gateway notification (the protocol's values)."""

    PAID = "paid", "paid"
    PARTIAL = "partial", "partial"
    CANCELLED = "cancelled", "cancelled"
    CLOSED = "closed", "closed"


class RejectionReason(models.TextChoices):
    """Why a request to the IPN endpoint is not an authentic notification."""

    UNKNOWN_KEY = "unknown_key", "unknown key"
    MISSING_SIGNATURE = "missing_signature", "missing signature"
    BAD_SIGNATURE = "bad_signature", "bad signature"
    # Signed with one shop's key, byte for byte a notification stored for another shop.
    ANOTHER_SHOP = "another_shop", "another shop's notification"
    # Refused before its key is read: counted, never recorded as a RejectedNotification.
    TOO_LARGE = "too_large", "too large"
    LENGTH_REQUIRED = "length_required", "length required"


# The reasons recorded per minute in RejectedNotification (the admin filters by these).
RECORDED_REJECTIONS = (
    RejectionReason.UNKNOWN_KEY,
    RejectionReason.MISSING_SIGNATURE,
    RejectionReason.BAD_SIGNATURE,
    RejectionReason.ANOTHER_SHOP,
)


class NotificationOutcome(models.TextChoices):
    """What applying a stored notification did (Notification.outcome)."""

    PENDING = "pending", "not applied yet"
    APPLIED = "applied", "applied"
    DUPLICATE = "duplicate", "duplicate: nothing to do"
    STALE = "stale", "stale: nothing to do"
    FLAGGED = "flagged", "flagged for review"
    UNKNOWN_TRANSACTION = "unknown_transaction", "unknown transaction"
    INVALID = "invalid", "invalid fields"
    ERROR = "error", "error while applying"


# The types of shop events, as a webhook endpoint's filter names them: one per order
# status an order can move to, and a flag, a resolution, a refund. A `ping` (a test) is
# not one: it goes to the endpoint pinged whatever its filter.
SHOP_EVENT_TYPES: tuple[str, ...] = (
    "order.awaiting_payment",
    "order.confirming",
    "order.paid",
    "order.cancelled",
    "order.expired",
    "order.failed",
    "order.invalid",
    "order.flagged",
    "order.resolved",
    "order.refunded",
)
SHOP_EVENT_PING = "ping"
