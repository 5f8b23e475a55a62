"""The API's cursor pagination: newest first, and a 400 for a cursor the API did not give out.

Every list of the API (orders, events) pages its rows by ("-created", "-id")
with `NewestFirstCursorPagination`: stable under inserts, one indexed range
per page, and a forged cursor is refused before it reaches the database.
"""

from __future__ import annotations

import base64
from datetime import UTC

from django.utils.dateparse import parse_datetime
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

INVALID_CURSOR = {
    "error": "invalid_cursor",
    "detail": "The cursor is not one this API gave out: "
    "start again from the first page, without a cursor.",
}


class InvalidCursor(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_cursor"


def _is_timestamp(position: str) -> bool:
    """True for an aware datetime in range: what `created` can be compared with."""
    try:
        moment = parse_datetime(position)
        if moment is None or moment.tzinfo is None:
            return False
        moment.astimezone(UTC)  # out of range once in UTC (9999-12-31 23:59-14:00)
    except (ValueError, OverflowError):
        return False
    return True


class NewestFirstCursorPagination(CursorPagination):
    """Pages of rows with `created` and `id`, newest first (`page_size`, at most 200)."""

    ordering = ("-created", "-id")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def decode_cursor(self, request: Request) -> Cursor | None:
        """DRF's cursor, or a 400 for one this API did not give out.

        DRF reads lax base64 (garbage decodes to nothing: the first page), answers
        a cursor it cannot split with 404, and hands any position to the `created`
        filter, where one that is not an aware datetime in range is a 500.
        """
        encoded = request.query_params.get(self.cursor_query_param)
        try:
            if encoded is not None:
                base64.b64decode(encoded.encode("ascii"), validate=True)
            cursor = super().decode_cursor(request)
        except (ValueError, NotFound) as exc:  # binascii.Error and UnicodeError are ValueErrors
            raise InvalidCursor(INVALID_CURSOR) from exc
        position = cursor.position if cursor is not None else None
        if position is not None and not _is_timestamp(str(position)):  # text (the stubs say int)
            raise InvalidCursor(INVALID_CURSOR)
        return cursor
