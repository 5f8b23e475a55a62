"""What a call to the gateway can raise besides a result.

Callers that create things at the gateway (orders) decide what to do next
from `may_have_reached_gateway`, not from the class alone: when it is true,
the outcome is unknown and the call must not be repeated blindly.

No message here ever carries the API secret, a Rest-Sign value or a body.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every failure of a gateway call."""


class GatewayUnavailable(GatewayError):
    """The call got no answer of the protocol: connection failed, connect timeout, HTTP 5xx.

    `may_have_reached_gateway` is false only when the connection was never
    established (refused, unresolvable host, connect timeout, TLS failure);
    a 5xx or a connection dropped after sending may have been acted upon.
    """

    def __init__(
        self, message: str, *, may_have_reached_gateway: bool, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.may_have_reached_gateway = may_have_reached_gateway
        self.status = status


class GatewayTimeout(GatewayUnavailable):
    """The request was sent but no reply came within the read timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, may_have_reached_gateway=True)


class GatewayRejected(GatewayError):
    """The gateway answered `{"result": "error"}`: it refused the call and did nothing.

    `message` is the gateway's text for people, `token` its machine token
    (None when the gateway sends none), `status` the HTTP status.
    """

    may_have_reached_gateway = False

    def __init__(self, message: str, *, token: str | None, status: int) -> None:
        super().__init__(f"gateway rejected the call: {message} (token={token}, HTTP {status})")
        self.message = message
        self.token = token
        self.status = status


class GatewayProtocolError(GatewayError):
    """Invalid data received: not JSON, an unknown `result`, or a reply of the wrong shape.

    Raised for a success reply whose `return` lacks fields or carries
    malformed values too. The call may have been acted upon.
    """

    may_have_reached_gateway = True

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"Invalid data received: {detail}")
        self.detail = detail
        self.status = status
