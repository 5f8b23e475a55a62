"""Orders API: one class per operation, thin over services and selectors.

Every view works for the calling API token's shop (`payments.api.authentication`):
it lists, reads and creates that shop's orders only, and another shop's order is
the same 404 as a missing one. Errors are raised, never answered here: the API's
exception handler (`payments.api.errors`) writes their body.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC
from typing import Any, NoReturn

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from payments.api import openapi
from payments.api.authentication import refused, request_token
from payments.api.base import ShopApiView
from payments.api.errors import ApiError
from payments.api.openapi import EVERY_OPERATION, error_responses
from payments.api.serializers import OrderCreateInput, OrderOutput
from payments.api.throttles import OrderCreateRateThrottle, OrderCreateThrottled
from payments.exceptions import (
    IdempotencyConflict,
    OrderCreationFailed,
    ShopInactive,
    ShopUnconfigured,
)
from payments.gateway.errors import GatewayRejected, GatewayTimeout, GatewayUnavailable
from payments.models import Order
from payments.selectors import order_get, order_list
from payments.services import order_create
from payments.states import OrderStatus

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    description="Retrying a POST with the same key returns the same order without a second "
    "gateway call; the same key with a different body is a 409. 1 to 255 printable characters.",
    examples=[OpenApiExample("key", value="order-42-attempt-1")],
)
RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    location=OpenApiParameter.HEADER,
    type=int,
    response=[429],
    description="Seconds to wait before creating another order with this token.",
)
MAX_IDEMPOTENCY_KEY = 255


def gateway_error(failure: OrderCreationFailed) -> ApiError:
    """The 502/503/504 of a failed creation; `order` names the order recorded as failed."""
    cause, order = failure.cause, str(failure.order.id)
    if isinstance(cause, GatewayRejected):
        return ApiError("gateway_rejected", cause.message, order=order)
    if isinstance(cause, GatewayTimeout):
        return ApiError("gateway_timeout", order=order)
    if isinstance(cause, GatewayUnavailable):
        return ApiError("gateway_unavailable", order=order)
    return ApiError("gateway_invalid_reply", order=order)


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


class OrderCursorPagination(CursorPagination):
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
                    f"Orders per page: {self.page_size} unless given, at most {self.max_page_size}."
                )
            else:
                parameter["description"] = "A page's `next` or `previous` link gives it."
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # DRF's, with OpenAPI 3.1's null and links to this API in the examples.
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


class OrderListCreateApi(ShopApiView):
    # Named here, not left to REST_FRAMEWORK: in a project that installs the app, its own
    # defaults (session login, AllowAny) must never open the orders API.
    # Used by get(); declared here so that the schema shows the paginated envelope.
    pagination_class = OrderCursorPagination

    def get_throttles(self) -> list[Any]:
        # Only creation costs a gateway call (and an order row); reads are cheap, indexed
        # and paginated, so they are not throttled.
        return [OrderCreateRateThrottle()] if self.request.method == "POST" else []

    def throttled(self, request: Request, wait: float | None) -> NoReturn:
        raise OrderCreateThrottled(wait)

    class FilterInput(serializers.Serializer):
        status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
        reference = serializers.CharField(max_length=100, required=False)

    @extend_schema(
        operation_id="orders_create",
        summary="Create an order at the gateway",
        description="Creates the order at the gateway and answers it with its `payment_url` "
        "(201). The same `Idempotency-Key` and body again answer the same order (200).",
        request=OrderCreateInput,
        parameters=[IDEMPOTENCY_HEADER, RETRY_AFTER_HEADER],
        examples=openapi.order_create_examples(),
        responses={
            201: OpenApiResponse(
                OrderOutput,
                description="Created at the gateway: send the buyer to `payment_url`.",
                examples=[OpenApiExample("created", value=openapi.ORDER_EXAMPLE)],
            ),
            200: OpenApiResponse(
                OrderOutput,
                description="The order this Idempotency-Key already created.",
                examples=[OpenApiExample("again", value=openapi.ORDER_EXAMPLE)],
            ),
            **error_responses(
                "invalid",
                "parse_error",
                "invalid_idempotency_key",
                *EVERY_OPERATION,
                "read_only_token",
                "idempotency_conflict",
                "too_large",
                "unsupported_media_type",
                "throttled",
                "gateway_rejected",
                "gateway_invalid_reply",
                "gateway_unavailable",
                "shop_unconfigured",
                "gateway_timeout",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
            raise ApiError("invalid_idempotency_key")
        token = request_token(request)
        given = OrderCreateInput(data=request.data, context={"shop": token.shop})
        given.is_valid(raise_exception=True)
        try:
            order, created = order_create(
                new=given.to_new_order(), shop=token.shop, api_token=token, idempotency_key=key
            )
        except IdempotencyConflict as exc:
            raise ApiError("idempotency_conflict", str(exc)) from exc
        except ShopInactive as exc:  # disabled since this request was authenticated
            raise refused("shop_disabled") from exc
        except ShopUnconfigured as exc:
            logger.exception("shop %s: order creation refused", token.shop.name)
            raise ApiError("shop_unconfigured") from exc
        except OrderCreationFailed as failure:
            raise gateway_error(failure) from failure
        return Response(
            OrderOutput(order, context={"new": created}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="orders_list",
        summary="List orders",
        description="The calling shop's orders, newest first, a page at a time: follow `next`.",
        parameters=[FilterInput],
        # A bare list serializer (not an OpenApiResponse): how drf-spectacular tells a list,
        # which adds the pagination parameters. The example is one order, paginated by it.
        responses={
            200: OrderOutput(many=True),
            **error_responses("invalid", "invalid_cursor", *EVERY_OPERATION, "too_large"),
        },
        examples=[OpenApiExample("a page", value=openapi.PAID_ORDER_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        # A plain dict, not the QueryDict: DRF reads a blank form value as "not given",
        # and the schema says a filter, when given, is not blank.
        filters = self.FilterInput(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        orders = order_list(shop=request_token(request).shop, **filters.validated_data)
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderOutput(page, many=True).data)


class OrderDetailApi(ShopApiView):
    @extend_schema(
        operation_id="orders_retrieve",
        summary="One order",
        description="One of the calling shop's orders, with its payments, flags and refunds. "
        "Another shop's order is the same 404 as a missing one.",
        responses={
            200: OpenApiResponse(
                OrderOutput,
                description="The order.",
                examples=[OpenApiExample("paid", value=openapi.PAID_ORDER_EXAMPLE)],
            ),
            **error_responses(*EVERY_OPERATION, "not_found"),
        },
    )
    def get(self, request: Request, order_id: Any) -> Response:
        try:
            order = order_get(shop=request_token(request).shop, order_id=order_id)
        except Order.DoesNotExist as exc:  # missing, or another shop's: the same answer
            raise NotFound("No such order.") from exc
        return Response(OrderOutput(order).data)
