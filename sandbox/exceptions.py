"""What the sandbox refuses, as small exception classes (messages are for people)."""

from __future__ import annotations


class SandboxError(Exception):
    """Base of everything the sandbox refuses on purpose."""


class ParameterError(SandboxError):
    """A request parameter is missing or malformed; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


class NonceRejected(SandboxError):
    """The nonce is not greater than the last one accepted for the key."""


class PaymentRefused(SandboxError):
    """The payment page (or sandbox_pay) cannot do this to this order now.

    `http_status` is what the payment page answers with; subclasses say which.
    """

    http_status = 400


class ApiError(SandboxError):
    """An error envelope the API answers: token, message for people, HTTP status."""

    def __init__(self, token: str, message: str, status: int) -> None:
        super().__init__(message)
        self.token = token
        self.message = message
        self.status = status


class InstantOnly(PaymentRefused):
    """The order only takes instant payments from gateway account holders."""

    http_status = 400


class AlreadyPaid(PaymentRefused):
    """The order is paid in full and does not take more payments (no multipay)."""

    http_status = 409


class InvalidAmount(PaymentRefused):
    """The amount to pay is not a positive BTC amount."""

    http_status = 400


class NotConfirmable(PaymentRefused):
    """Only a `partial` payment can be confirmed."""

    http_status = 409


class NoIpnUrl(PaymentRefused):
    """The order has no ipn URL: a notification has nowhere to go."""

    http_status = 409
