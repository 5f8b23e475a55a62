"""Events API: a shop's events and their deliveries, and sending them again.

One class per operation, thin over payments.shop_event_selectors and
payments.services.shop_event_redelivery. Every view works for the calling API
token's shop: another shop's event is the same 404 as a missing one, and
another shop's endpoint id is refused like an unknown one. Errors are DRF
exceptions; the API's exception handler gives them their body.
"""

from __future__ import annotations

from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from payments.api import event_examples as examples
from payments.api.authentication import request_token
from payments.api.base import ShopApiView
from payments.api.errors import ApiError
from payments.api.event_serializers import (
    EventDetailOutput,
    EventFilterInput,
    EventOutput,
    RedeliverInput,
    RedeliverOutput,
    ReplayInput,
    ReplayOutput,
)
from payments.api.openapi import EVERY_OPERATION, enum_query, error_responses, operation
from payments.api.pagination import NewestFirstCursorPagination
from payments.exceptions import EndpointRefused
from payments.models import Shop, ShopEvent, WebhookEndpoint
from payments.services.shop_event_redelivery import (
    shop_event_deliveries_replay,
    shop_event_redeliver,
)
from payments.shop_event_selectors import (
    REPLAY_MAX_DELIVERIES,
    REPLAY_MAX_RANGE,
    shop_deliveries_failed,
    shop_endpoint_get,
    shop_event_deliveries,
    shop_event_get,
    shop_event_list,
)

EVENT_ID = OpenApiParameter("event_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
# What a POST may also be refused for: its body, or a read-only token.
WRITES = ("invalid", "parse_error", "read_only_token", "unsupported_media_type", "too_large")


def _event(shop: Shop, event_id: str) -> ShopEvent:
    """The shop's event by the id in the path: a 400 for one that is not a UUID, a 404 for
    a missing one and for another shop's."""
    try:
        uuid = UUID(event_id)
    except ValueError as exc:
        raise ValidationError({"event_id": ["Not a valid UUID."]}) from exc
    try:
        return shop_event_get(shop=shop, event_id=uuid)
    except ShopEvent.DoesNotExist as exc:
        raise ApiError("not_found", "No such event.") from exc


def _endpoint(shop: Shop, endpoint_id: int | None) -> WebhookEndpoint | None:
    """The shop's endpoint by the id in the body; another shop's is refused as unknown."""
    if endpoint_id is None:
        return None
    try:
        return shop_endpoint_get(shop=shop, endpoint_id=endpoint_id)
    except WebhookEndpoint.DoesNotExist as exc:
        raise ValidationError({"endpoint": ["No such webhook endpoint of this shop."]}) from exc


class EventListApi(ShopApiView):
    # Declared here so that the schema shows the paginated envelope.
    pagination_class = NewestFirstCursorPagination

    @operation(
        parameters=[
            EventFilterInput,
            enum_query("type", "EventType", "Only events of this type."),
        ],
        responses={
            200: OpenApiResponse(
                EventOutput(many=True), description="A page of the shop's events, newest first."
            ),
            **error_responses("invalid", "invalid_cursor", *EVERY_OPERATION, "too_large"),
        },
        examples=[examples.EVENT_LIST],
        summary="List events",
        description="The shop's events, newest first, a page at a time (follow `next`). "
        "A bad filter or a cursor this API did not give out is a 400.",
    )
    def get(self, request: Request) -> Response:
        filters = EventFilterInput(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        paginator = NewestFirstCursorPagination()
        events = shop_event_list(shop=request_token(request).shop, **filters.validated_data)
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(EventOutput(page, many=True).data)


class EventDetailApi(ShopApiView):
    @operation(
        parameters=[EVENT_ID],
        responses={
            200: OpenApiResponse(
                EventDetailOutput, description="The event and its delivery to each endpoint."
            ),
            **error_responses("invalid", *EVERY_OPERATION, "not_found"),
        },
        examples=[examples.EVENT_DETAIL],
        summary="One event and its deliveries",
        description="The event as delivered, with its delivery to each endpoint. "
        "Another shop's event is the same 404 as a missing one.",
    )
    def get(self, request: Request, event_id: str) -> Response:
        event = _event(request_token(request).shop, event_id)
        deliveries = shop_event_deliveries(event=event)
        return Response(EventDetailOutput(event, context={"deliveries": deliveries}).data)


class EventRedeliverApi(ShopApiView):
    @operation(
        parameters=[EVENT_ID],
        request=RedeliverInput,
        responses={
            202: OpenApiResponse(
                RedeliverOutput, description="The deliveries made due now, and how many enqueued."
            ),
            **error_responses(*WRITES, *EVERY_OPERATION, "not_found"),
        },
        examples=[examples.REDELIVER_ALL, examples.REDELIVER_ONE, examples.REDELIVERED],
        summary="Send an event again",
        description="Without a body: to each endpoint that has not taken it yet (failing or "
        "given up). With `endpoint`: to that endpoint, even if it took it already (the same "
        "event id and body: drop duplicates by the `webhook-id`). Each is due now with a new "
        "retry window. Read-only tokens may not.",
    )
    def post(self, request: Request, event_id: str) -> Response:
        shop = request_token(request).shop
        event = _event(shop, event_id)
        given = RedeliverInput(data=request.data)
        given.is_valid(raise_exception=True)
        endpoint = _endpoint(shop, given.validated_data.get("endpoint"))
        try:
            done = shop_event_redeliver(event=event, endpoint=endpoint)
        except EndpointRefused as exc:
            raise ValidationError({"endpoint": [str(exc).capitalize() + "."]}) from exc
        answer = {
            "event": event.pk,
            "enqueued": done.enqueued,
            "deliveries": shop_event_deliveries(event=event).filter(pk__in=done.deliveries),
        }
        return Response(RedeliverOutput(answer).data, status=status.HTTP_202_ACCEPTED)


class EventReplayApi(ShopApiView):
    @operation(
        request=ReplayInput,
        responses={
            202: OpenApiResponse(
                ReplayOutput, description="How many failed deliveries were made due now."
            ),
            **error_responses(*WRITES, "replay_too_large", *EVERY_OPERATION),
        },
        examples=[examples.REPLAY, examples.REPLAYED],
        summary="Send failed deliveries again",
        description="Every failed delivery (given up, or failing; never a ping's) of the events "
        "created in [since, until) is made due now with a new retry window; to `endpoint` "
        f"only when given. The range is at most {REPLAY_MAX_RANGE.days} days and at most "
        f"{REPLAY_MAX_DELIVERIES} "
        "deliveries are replayed at once (more is a 400 `replay_too_large`: narrow the "
        "range). Read-only tokens may not.",
    )
    def post(self, request: Request) -> Response:
        shop = request_token(request).shop
        given = ReplayInput(data=request.data)
        given.is_valid(raise_exception=True)
        chosen = given.validated_data
        failed = shop_deliveries_failed(
            shop=shop,
            since=chosen["since"],
            until=chosen["until"],
            endpoint=_endpoint(shop, chosen.get("endpoint")),
        )
        ids = list(failed.values_list("pk", flat=True)[: REPLAY_MAX_DELIVERIES + 1])
        if len(ids) > REPLAY_MAX_DELIVERIES:
            raise ApiError(
                "replay_too_large",
                f"More than {REPLAY_MAX_DELIVERIES} failed deliveries in this range: "
                "replay a shorter one at a time.",
            )
        done = shop_event_deliveries_replay(delivery_ids=ids)
        answer = {"deliveries": len(done.deliveries), "enqueued": done.enqueued}
        return Response(ReplayOutput(answer).data, status=status.HTTP_202_ACCEPTED)
