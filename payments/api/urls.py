from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from payments.api.views import OrderDetailApi, OrderListCreateApi

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="api-orders"),
    path("orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="api-order"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
