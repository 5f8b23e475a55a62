from django.urls import path, re_path

from payments.api.base import ApiNotFoundView
from payments.api.events import EventDetailApi, EventListApi, EventRedeliverApi, EventReplayApi
from payments.api.schema import ApiDocsView, ApiSchemaView
from payments.api.views import OrderDetailApi, OrderListCreateApi

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="api-orders"),
    path("orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="api-order"),
    path("events/", EventListApi.as_view(), name="api-events"),
    # Before the event's path: "replay" is not an event id.
    path("events/replay/", EventReplayApi.as_view(), name="api-events-replay"),
    path("events/<str:event_id>/", EventDetailApi.as_view(), name="api-event"),
    path(
        "events/<str:event_id>/redeliver/",
        EventRedeliverApi.as_view(),
        name="api-event-redeliver",
    ),
    path("schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: any other path under the API is the API's JSON 404, under any mount prefix
    # (a host project need not add ApiErrorMiddleware). Not in the schema: no operation.
    re_path(r"^.*$", ApiNotFoundView.as_view()),
]
