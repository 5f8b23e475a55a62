"""The order-creation throttle: `API_ORDER_CREATE_RATE` per shop, in the default cache."""

from __future__ import annotations

import math
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from payments.conf import payments_settings
from payments.models import ApiToken


class OrderCreateRateThrottle(SimpleRateThrottle):
    """DRF's sliding window per shop: all of a shop's API tokens share one count.

    Per shop, not per token: every creation costs a call on the shop's gateway
    account and an order row, and making more tokens must not raise the limit.
    The window lives in the default cache (`cache_format` keys by scope and shop
    id): every process that shares that cache shares the count.
    """

    scope = "order_create"

    def get_rate(self) -> str | None:
        # Read at each request (not frozen into DRF's settings at import): one setting,
        # and tests can change it.
        rate: str | None = payments_settings.API_ORDER_CREATE_RATE
        return rate

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request.auth
        if not isinstance(token, ApiToken):
            return None  # not a shop's call (refused before throttling anyway)
        return self.cache_format % {"scope": self.scope, "ident": f"shop-{token.shop_id}"}


class OrderCreateThrottled(APIException):
    """A 429 `throttled`; DRF's handler adds `Retry-After` from `wait`."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "throttled"

    def __init__(self, wait: float | None) -> None:
        self.wait = math.ceil(wait) if wait is not None else None
        when = f"in {self.wait} s" if self.wait is not None else "later"
        super().__init__(f"Too many orders created for this shop: try again {when}.")
