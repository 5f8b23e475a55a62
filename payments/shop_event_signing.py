"""Signing of the shop events by the Standard Webhooks specification (standardwebhooks.com).

Each POST carries

    webhook-id: <the event's id, the same on every attempt and every endpoint>
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")> ...

with one `v1,...` per secret, space-separated: the endpoint's secret, then
its former one while a rotation runs. The signing itself is the
`standardwebhooks` package's, so a shop verifies with any Standard Webhooks
library (README, "Shop webhooks").

A secret is "whsec_" + the standard base64 of its key bytes (`new_secret`).
Anything else (the endpoints' secrets made before Standard Webhooks, whose
tail is urlsafe base64, or a SHOP_WEBHOOK_SECRET that is plain text) signs
with its raw UTF-8 bytes, as the libraries do given a raw key; the checks
payments.W401 / W402 say to rotate those.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

EVENT_ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105  (the standard's prefix; it also makes a leak greppable)
SECRET_BYTES = 32


def new_secret() -> str:
    """A new endpoint secret: "whsec_" + the standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _standard_key(secret: str) -> bytes | None:
    """The key bytes of a "whsec_<base64>" secret; None when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    try:
        # validate=True: a legacy urlsafe tail ("-", "_", no padding) is not read as base64.
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        return None
    return key or None


def secret_is_standard(secret: str) -> bool:
    """True for "whsec_" + standard base64 (with its "=" padding) of a non-empty key."""
    return _standard_key(secret) is not None


def secret_key(secret: str) -> bytes:
    """The HMAC key of `secret`: its base64-decoded bytes, or else its raw UTF-8 bytes."""
    if not secret:
        raise ValueError("refusing to sign with an empty secret")
    return _standard_key(secret) or secret.encode("utf-8")


def signature_headers(
    *, event_id: str, body: str, secrets: Sequence[str], timestamp: int
) -> dict[str, str]:
    """The three Standard Webhooks headers of `body`, signed by each of `secrets` at `timestamp`.

    `body` is exactly the text sent (the event's stored body), `timestamp` the
    attempt's unix seconds.
    """
    if not secrets:
        raise ValueError("refusing to sign without a secret")
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    signatures = [
        Webhook(secret_key(secret)).sign(msg_id=event_id, timestamp=moment, data=body)
        for secret in secrets
    ]
    return {
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signatures),
    }
