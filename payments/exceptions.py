"""Every exception the payments app raises on purpose, one class per refusal.

Nothing here imports from the app at run time (the type names below are for
annotations only), so any module may import this one without an import cycle.
Two families stay elsewhere on purpose: the protocol client's errors in
`payments/gateway/errors.py` (with `InvalidSecret` in `gateway/signing.py`),
which keep `payments/gateway/` self-contained and Django-free, and the API's
`APIException` subclasses beside the views that answer with them
(`payments/api/throttles.py`, `payments/api/pagination.py`, `payments/api/events.py`),
which belong to DRF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from payments.gateway.errors import GatewayError
    from payments.models import Order


class AmountError(ValueError):
    """An amount that is not a positive, exact amount of its currency."""


class UnknownCurrency(AmountError):
    """A currency code the gateway does not know."""


class InvalidTransition(Exception):
    """A status change the state table (payments.states) does not allow."""


class InvalidNotification(ValueError):
    """An authentic notification whose fields cannot be read."""


class BodyTooLarge(Exception):
    """The body is over the limit, or its Content-Length is not a length at all."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class NotificationOfAnotherShop(Exception):
    """A body already stored for another shop, now signed with this shop's key.

    One shop's key can never touch another shop's notification: the request is refused.
    """


class LengthRequired(Exception):
    """A chunked body that this server hands over undecoded."""


class OrderCreationFailed(Exception):
    """The gateway did not create the order; the order is recorded as failed."""

    def __init__(self, order: Order, cause: GatewayError) -> None:
        super().__init__(str(cause))
        self.order = order
        self.cause = cause


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used with another body, or its first request is still running."""


class TooManySelected(ValueError):
    """More rows than one review action may touch at once."""


class CommentRequired(ValueError):
    """A flag review without a comment: the audit trail needs the reason."""


class ResolutionRefused(ValueError):
    """A decision that cannot apply to this order (its state, an amount, no reason)."""


class SecretUnreadable(Exception):
    """A sealed secret that none of the configured secret keys opens."""


class ShopInactive(Exception):
    """The shop is disabled: it takes no new orders and its tokens are refused."""


class ShopUnconfigured(Exception):
    """The shop's gateway credentials are missing or unreadable: nothing can be signed."""


class EndpointRefused(ValueError):
    """An event cannot be sent to this endpoint: another shop's, or its filter refuses the type."""
