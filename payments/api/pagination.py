"""The API's cursor pagination: newest first, and a 400 for a cursor the API did not give out.

Every list of the API (orders, events) pages its rows by ("-created", "-id")
with `NewestFirstCursorPagination`: stable under inserts, one indexed range
per page, and a forged cursor is refused before it reaches the database.
"""

from __future__ import annotations

import base64
from datetime import UTC
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from payments.api.errors import ApiError


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

    def get_page_size(self, request: Request) -> int:
        # DRF answers the default page for a page_size it cannot read; say it is wrong instead.
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not (given.isascii() and given.isdigit() and int(given) > 0):
            raise serializers.ValidationError(
                {"page_size": [f"A whole number from 1 (at most {self.max_page_size} are sent)."]}
            )
        return min(int(given), self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Rows per page: {self.page_size} unless given, at most {self.max_page_size}."
                )
            else:
                parameter["description"] = "A page's `next` or `previous` link gives it."
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # DRF's, with OpenAPI 3.1's null and a link to this API in the examples.
        link = "https://pay.shop.example/api/orders/?cursor="
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {"type": ["string", "null"], "format": "uri", "example": f"{link}cD0y"},
                "previous": {"type": ["string", "null"], "format": "uri", "example": None},
                "results": schema,
            },
        }

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
            raise ApiError("invalid_cursor") from exc
        position = cursor.position if cursor is not None else None
        if position is not None and not _is_timestamp(str(position)):  # text (the stubs say int)
            raise ApiError("invalid_cursor")
        return cursor
