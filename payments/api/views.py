"""Orders API: one class per operation, thin over services and selectors.

Every view works for the calling API token's shop (`payments.api.authentication`):
it lists, reads and creates that shop's orders only, and another shop's order is
the same 404 as a missing one. Errors are raised, never answered here: the API's
exception handler (`payments.api.errors`) writes their body.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from payments.api import openapi
from payments.api.authentication import refused, request_token
from payments.api.base import ShopApiView
from payments.api.errors import ApiError
from payments.api.openapi import EVERY_OPERATION, enum_query, error_responses, operation
from payments.api.pagination import NewestFirstCursorPagination
from payments.api.serializers import OrderCreateInput, OrderOutput, order_representation
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


class OrderListCreateApi(ShopApiView):
    # Named here, not left to REST_FRAMEWORK: in a project that installs the app, its own
    # defaults (session login, AllowAny) must never open the orders API.
    # Used by get(); declared here so that the schema shows the paginated envelope.
    pagination_class = NewestFirstCursorPagination

    def get_throttles(self) -> list[Any]:
        # Only creation costs a gateway call (and an order row); reads are cheap, indexed
        # and paginated, so they are not throttled.
        return [OrderCreateRateThrottle()] if self.request.method == "POST" else []

    def throttled(self, request: Request, wait: float | None) -> NoReturn:
        raise OrderCreateThrottled(wait)

    class FilterInput(serializers.Serializer):
        status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
        reference = serializers.CharField(
            max_length=100,
            required=False,
            help_text="Only the orders with this reference (the shop's own id, exactly).",
        )

    @operation(
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
            order_representation(order, new=created),  # what OrderOutput renders, built once
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @operation(
        operation_id="orders_list",
        summary="List orders",
        description="The calling shop's orders, newest first, a page at a time: follow `next`.",
        parameters=[
            FilterInput,
            enum_query("status", "OrderStatus", "Only the orders in this status."),
        ],
        # A bare list serializer (not an OpenApiResponse): how drf-spectacular tells a list,
        # which adds the pagination parameters. The example is one order, paginated by it.
        responses={
            200: OpenApiResponse(
                OrderOutput(many=True), description="A page of the shop's orders, newest first."
            ),
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
    @operation(
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
