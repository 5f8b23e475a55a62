"""The OpenAPI examples of the events API: one per request and answer (payments/api/events.py)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

_EVENT_ID = "6f1c2a9e-3b7d-4c1a-9e0f-2d5b8a7c4e13"
_ORDER_ID = "0b7e4c1d-9a2f-4e6b-8c3d-5f1a2b3c4d5e"
_EVENT = {
    "id": _EVENT_ID,
    "type": "order.paid",
    "created": "2026-11-30T12:00:00Z",
    "order": _ORDER_ID,
    "payload": {
        "id": _EVENT_ID,
        "type": "order.paid",
        "version": 2,
        "timestamp": "2026-11-30T12:00:00Z",
        "data": {"order": {"id": _ORDER_ID, "reference": "order-1", "status": "paid"}},
    },
}
_FAILING = {
    "endpoint": {"id": 3, "url": "https://shop.example/hooks"},
    "state": "failing",
    "attempts": 2,
    "last_attempt_at": "2026-11-30T12:01:00Z",
    "last_error": "HTTP 500",
    "delivered_at": None,
    "next_attempt_at": "2026-11-30T12:03:00Z",
    "gives_up_at": "2026-12-01T12:00:00Z",
    "given_up_at": None,
}
_DELIVERED = {
    **_FAILING,
    "endpoint": {"id": 4, "url": "https://backup.shop.example/hooks"},
    "state": "delivered",
    "attempts": 1,
    "last_attempt_at": "2026-11-30T12:00:01Z",
    "last_error": "",
    "delivered_at": "2026-11-30T12:00:01Z",
    "next_attempt_at": None,
}

EVENT_LIST = OpenApiExample(
    "A page of events",
    value=_EVENT,  # one item: the schema wraps it in the page
    response_only=True,
    status_codes=["200"],
)
EVENT_DETAIL = OpenApiExample(
    "An event, failing at one endpoint",
    value={**_EVENT, "deliveries": [_FAILING, _DELIVERED]},
    response_only=True,
    status_codes=["200"],
)
REDELIVER_ALL = OpenApiExample(
    "To every endpoint that has not taken it", value={}, request_only=True
)
REDELIVER_ONE = OpenApiExample("To one endpoint", value={"endpoint": 4}, request_only=True)
REDELIVERED = OpenApiExample(
    "Made due now",
    value={
        "event": _EVENT_ID,
        "enqueued": 1,
        "deliveries": [{**_FAILING, "next_attempt_at": "2026-11-30T12:02:00Z"}],
    },
    response_only=True,
    status_codes=["202"],
)
REPLAY = OpenApiExample(
    "A day's failed deliveries to one endpoint",
    value={"since": "2026-11-29T00:00:00Z", "until": "2026-11-30T00:00:00Z", "endpoint": 3},
    request_only=True,
)
REPLAYED = OpenApiExample(
    "Made due now",
    value={"deliveries": 12, "enqueued": 12},
    response_only=True,
    status_codes=["202"],
)
