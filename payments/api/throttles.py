"""The order-creation throttle: `API_ORDER_CREATE_RATE` orders per shop, counted in the database."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from payments.conf import payments_settings
from payments.models import ApiToken
from payments.selectors import order_created_nth_newest


class OrderCreateRateThrottle(SimpleRateThrottle):
    """At most N orders per shop in any window of the rate's period: all of a shop's API
    tokens share one count.

    Per shop, not per token: every creation costs a call on the shop's gateway
    account and an order row, and making more tokens must not raise the limit.
    What is counted is those rows, the shop's orders by their `created` time (DRF's
    rate parsing, not its cache): one count for every process and machine of the
    service, as exact as the database, at one indexed statement per creation.
    """

    scope = "order_create"
    wait_seconds: float | None = None

    def get_rate(self) -> str | None:
        # Read at each request (not frozen into DRF's settings at import): one setting,
        # and tests can change it.
        rate: str | None = payments_settings.API_ORDER_CREATE_RATE
        return rate

    def allow_request(self, request: Request, view: Any) -> bool:
        token = request.auth
        limit, seconds = self.parse_rate(self.rate)
        if limit is None or seconds is None or not isinstance(token, ApiToken):
            return True  # no limit, or not a shop's call (refused before throttling anyway)
        now, window = timezone.now(), timedelta(seconds=seconds)
        oldest = order_created_nth_newest(shop_id=token.shop_id, n=limit, since=now - window)
        if oldest is None:
            return True
        # Refused until the oldest of the window's `limit` orders leaves it; a whole second
        # at least (`Retry-After: 0` would invite a retry that is refused).
        self.wait_seconds = max((oldest + window - now).total_seconds(), 1.0)
        return False

    def wait(self) -> float | None:
        return self.wait_seconds


class OrderCreateThrottled(APIException):
    """A 429 `throttled`; DRF's handler adds `Retry-After` from `wait`."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "throttled"

    def __init__(self, wait: float | None) -> None:
        self.wait = math.ceil(wait) if wait is not None else None
        when = f"in {self.wait} s" if self.wait is not None else "later"
        super().__init__(f"Too many orders created for this shop: try again {when}.")
