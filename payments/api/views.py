"""Orders API: one class per operation, thin over services and selectors.

Every view works for the calling API token's shop (`payments.api.authentication`):
it lists, reads and creates that shop's orders only, and another shop's order is
the same 404 as a missing one.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from payments.api.authentication import refused, request_token
from payments.api.pagination import NewestFirstCursorPagination
from payments.api.serializers import ErrorOutput, OrderCreateInput, OrderOutput
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
    "gateway call; the same key with a different body is a 409.",
)
RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    location=OpenApiParameter.HEADER,
    type=int,
    response=[429],
    description="Seconds to wait before creating another order with this token.",
)
MAX_IDEMPOTENCY_KEY = 255
NO_SUCH_ORDER = {"detail": "No such order."}
SHOP_UNCONFIGURED = {
    "error": "shop_unconfigured",
    "detail": "This shop's gateway credentials cannot be read: no order can be created "
    "until the service's operator fixes them.",
}


def gateway_failure_response(failure: OrderCreationFailed) -> Response:
    cause = failure.cause
    http: int
    if isinstance(cause, GatewayRejected):
        code, http = "gateway_rejected", status.HTTP_502_BAD_GATEWAY
        detail = cause.message
    elif isinstance(cause, GatewayTimeout):
        code, http = "gateway_timeout", status.HTTP_504_GATEWAY_TIMEOUT
        detail = "The gateway did not answer in time; the order is recorded as failed."
    elif isinstance(cause, GatewayUnavailable):
        code, http = "gateway_unavailable", status.HTTP_503_SERVICE_UNAVAILABLE
        detail = "The gateway could not be reached; the order is recorded as failed."
    else:
        code, http = "gateway_invalid_reply", status.HTTP_502_BAD_GATEWAY
        detail = "The gateway's reply was not understood; the order is recorded as failed."
    return Response({"error": code, "detail": detail, "order": failure.order.id}, status=http)


class OrderListCreateApi(APIView):
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
        reference = serializers.CharField(max_length=100, required=False)

    @extend_schema(
        request=OrderCreateInput,
        parameters=[IDEMPOTENCY_HEADER, RETRY_AFTER_HEADER],
        responses={
            201: OrderOutput,
            200: OrderOutput,
            400: None,
            401: ErrorOutput,
            403: ErrorOutput,
            409: ErrorOutput,
            429: ErrorOutput,
            502: ErrorOutput,
            503: ErrorOutput,
            504: ErrorOutput,
        },
        summary="Create an order at the gateway",
    )
    def post(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
            return Response(
                {"error": "invalid_idempotency_key", "detail": "1 to 255 printable characters."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        token = request_token(request)
        given = OrderCreateInput(data=request.data, context={"shop": token.shop})
        given.is_valid(raise_exception=True)
        try:
            order, created = order_create(
                new=given.to_new_order(), shop=token.shop, api_token=token, idempotency_key=key
            )
        except IdempotencyConflict as exc:
            return Response(
                {"error": "idempotency_conflict", "detail": str(exc)},
                status=status.HTTP_409_CONFLICT,
            )
        except ShopInactive as exc:  # disabled since this request was authenticated
            raise refused("shop_disabled") from exc
        except ShopUnconfigured:
            logger.exception("shop %s: order creation refused", token.shop.name)
            return Response(SHOP_UNCONFIGURED, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except OrderCreationFailed as failure:
            return gateway_failure_response(failure)
        return Response(
            OrderOutput(order, context={"new": created}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        parameters=[FilterInput],
        # 400: a bad filter (field errors), or a cursor that is not one of ours
        # ({"error": "invalid_cursor", "detail": ...}).
        responses={200: OrderOutput(many=True), 400: None, 401: ErrorOutput},
        summary="List orders",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterInput(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        orders = order_list(shop=request_token(request).shop, **filters.validated_data)
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderOutput(page, many=True).data)


class OrderDetailApi(APIView):
    @extend_schema(
        responses={200: OrderOutput, 401: ErrorOutput, 404: None},
        summary="One order",
        description="Another shop's order is the same 404 as a missing one.",
    )
    def get(self, request: Request, order_id: Any) -> Response:
        try:
            order = order_get(shop=request_token(request).shop, order_id=order_id)
        except Order.DoesNotExist:  # missing, or another shop's: the same answer
            return Response(NO_SUCH_ORDER, status=status.HTTP_404_NOT_FOUND)
        return Response(OrderOutput(order).data)
