from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from payments.api.events import EventDetailApi, EventListApi, EventRedeliverApi, EventReplayApi
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
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
