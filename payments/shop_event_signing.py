"""Signing of the shop events; `verify_shop_signature` is what a shop runs on its side.

Pure Python (no Django), so a shop can copy this file as it is. Each POST
carries

    Merchant-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp is signed with the body, so an old request replayed later is
refused by its age. While the endpoint's secret is being rotated the header
carries one `v1=` per secret (the new one first): a shop verifies with either.
The event's id (`Merchant-Event-Id`, also `id` in the body) lets the shop
drop an event it has already handled.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Merchant-Signature"
EVENT_ID_HEADER = "Merchant-Event-Id"
EVENT_TYPE_HEADER = "Merchant-Event-Type"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _mac(body: bytes, timestamp: int, secret: str) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_shop_event(
    body: bytes, secret: str | Sequence[str], *, timestamp: int | None = None
) -> str:
    """The value of the Merchant-Signature header for `body`, signed now (or at `timestamp`).

    Several secrets (an endpoint's new and former one during a rotation) give
    one `v1=` per secret, in that order, under the one timestamp.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("refusing to sign with an empty secret")
    moment = int(time.time()) if timestamp is None else int(timestamp)
    macs = ",".join(f"{SCHEME}={_mac(body, moment, each)}" for each in secrets)
    return f"t={moment},{macs}"


def verify_shop_signature(
    body: bytes,
    header: str,
    secret: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` is a valid signature of the raw `body` made within the tolerance.

    `body` must be the request's raw bytes, before any JSON parsing. Several
    `v1=` values are accepted (any one may match), so a shop can keep taking
    events while the secret is being rotated. Comparison is constant-time.
    """
    if not secret or not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                return False
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _mac(body, timestamp, secret)
    matched = False
    for candidate in candidates:  # no early exit: the same work whichever one matches
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    return matched
