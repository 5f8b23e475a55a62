"""The order-creation throttle: `API_ORDER_CREATE_RATE` per API token, in the default cache."""

from __future__ import annotations

import math

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.throttling import UserRateThrottle


class OrderCreateRateThrottle(UserRateThrottle):
    """DRF's sliding window per user, and so per token (authtoken gives a user one).

    The window lives in the default cache (`cache_format` keys by scope and user id):
    every process that shares that cache shares the count.
    """

    scope = "order_create"

    def get_rate(self) -> str | None:
        # Read at each request (not frozen into DRF's settings at import): one setting,
        # and tests can change it.
        rate: str | None = settings.API_ORDER_CREATE_RATE
        return rate


class OrderCreateThrottled(APIException):
    """A 429 in the API's error shape; DRF's handler adds `Retry-After` from `wait`."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "throttled"

    def __init__(self, wait: float | None) -> None:
        self.wait = math.ceil(wait) if wait is not None else None
        when = f"in {self.wait} s" if self.wait is not None else "later"
        super().__init__(
            {
                "error": "throttled",
                "detail": f"Too many orders created with this API token: try again {when}.",
            }
        )
