"""Rest-Sign: base64(HMAC-SHA512(key=base64decode(secret), msg=raw body)).

Signatures are computed and compared on the exact bytes sent or received,
never on re-encoded fields; comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets


class InvalidSecret(ValueError):
    """The API secret is not valid base64."""


def decode_secret(secret: str | bytes) -> bytes:
    """The HMAC key is the base64-decoded secret, not its text."""
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("the API secret is not valid base64") from exc


def secret_valid(secret: str | bytes) -> bool:
    """Whether `secret` is usable: non-empty base64 (the one check of a secret)."""
    try:
        return bool(decode_secret(secret))
    except InvalidSecret:
        return False


def new_secret() -> str:
    """A secret as the gateway issues them: base64 of 64 random bytes."""
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")


def sign(body: bytes, secret: str | bytes) -> str:
    """The Rest-Sign header value for `body`."""
    digest = hmac.new(decode_secret(secret), body, hashlib.sha512).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, rest_sign: str | bytes | None, secret: str | bytes) -> bool:
    """True when `rest_sign` is the signature of `body`; False for anything else.

    A missing, non-base64 or wrong-length header is simply not valid. The
    digests are compared with hmac.compare_digest on raw bytes.
    """
    if not rest_sign:
        return False
    try:
        received = base64.b64decode(rest_sign, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(decode_secret(secret), body, hashlib.sha512).digest()
    return hmac.compare_digest(received, expected)
