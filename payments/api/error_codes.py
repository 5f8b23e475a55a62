"""Every error code the API answers, with its status and text (`payments.api.errors`).

Apart from the handler: the authentication classes need the texts, and DRF imports
them while `rest_framework.views` (which the handler needs) is being imported.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    status: int
    detail: str  # what the API answers (an example where the text varies)
    when: str  # for the schema and the docs


# Every code the API answers. README's API section lists them; the schema's examples come
# from here (payments.api.openapi), so a code added here is documented in both.
CODES: dict[str, ErrorCode] = {
    "invalid": ErrorCode(
        400, "Not valid: amount. Each field's messages are in fields.", "a field is not valid"
    ),
    "parse_error": ErrorCode(
        400, "JSON parse error - Expecting value: line 1 column 1 (char 0)", "unreadable body"
    ),
    "invalid_idempotency_key": ErrorCode(
        400, "Idempotency-Key: 1 to 255 printable characters.", "Idempotency-Key not usable"
    ),
    "invalid_cursor": ErrorCode(
        400,
        "The cursor is not one this API gave out: start again from the first page, "
        "without a cursor.",
        "a cursor the API did not give out",
    ),
    "replay_too_large": ErrorCode(
        400,
        "More than 10000 failed deliveries in this range: replay a shorter one at a time.",
        "a replay of too many deliveries at once",
    ),
    "bad_request": ErrorCode(400, "Bad request.", "a request refused before the API read it"),
    "not_authenticated": ErrorCode(
        401,
        "Send the shop's API token: Authorization: Token <key> (or Bearer <key>).",
        "no API token",
    ),
    "invalid_token": ErrorCode(401, "This API token is not valid.", "an unknown token"),
    "token_revoked": ErrorCode(
        401,
        "This API token was revoked: ask the shop's operator for a new one.",
        "a revoked token",
    ),
    "shop_disabled": ErrorCode(401, "This API token's shop is disabled.", "the shop is disabled"),
    "read_only_token": ErrorCode(403, "This API token is read-only.", "a write, read-only token"),
    "not_found": ErrorCode(404, "No such order.", "nothing here, or another shop's"),
    "method_not_allowed": ErrorCode(405, 'Method "DELETE" not allowed.', "a method not offered"),
    "not_acceptable": ErrorCode(
        406, "Could not satisfy the request Accept header.", "an Accept other than JSON"
    ),
    "idempotency_conflict": ErrorCode(
        409,
        "This Idempotency-Key was used with another request body.",
        "an Idempotency-Key reused with another body, or still running",
    ),
    "too_large": ErrorCode(
        413,
        "The request body is too large, or has too many fields.",
        "a body over the size or field limit",
    ),
    "unsupported_media_type": ErrorCode(
        415, 'Unsupported media type "text/plain" in request.', "a body that is not JSON"
    ),
    "throttled": ErrorCode(
        429, "Too many orders created for this shop: try again in 12 s.", "too many creations"
    ),
    "server_error": ErrorCode(500, "Server error.", "a bug (it is logged)"),
    "gateway_rejected": ErrorCode(
        502, "Bad currency", "the gateway refused the order (its reason)"
    ),
    "gateway_invalid_reply": ErrorCode(
        502,
        "The gateway's reply was not understood; the order is recorded as failed.",
        "the gateway's reply could not be read",
    ),
    "gateway_unavailable": ErrorCode(
        503,
        "The gateway could not be reached; the order is recorded as failed.",
        "the gateway could not be reached",
    ),
    "shop_unconfigured": ErrorCode(
        503,
        "This shop's gateway credentials cannot be read: no order can be created "
        "until the service's operator fixes them.",
        "the shop's gateway secret cannot be read",
    ),
    "gateway_timeout": ErrorCode(
        504,
        "The gateway did not answer in time; the order is recorded as failed.",
        "the gateway did not answer in time",
    ),
}
