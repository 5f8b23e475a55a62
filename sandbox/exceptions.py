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
    """The payment page (or sandbox_pay) cannot do this to this order now."""


class ApiError(SandboxError):
    """An error envelope the API answers: token, message for people, HTTP status."""

    def __init__(self, token: str, message: str, status: int) -> None:
        super().__init__(message)
        self.token = token
        self.message = message
        self.status = status
