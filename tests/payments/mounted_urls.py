"""A URLconf that mounts the app as a shop's own project does (README: Inside your own
Django project), under /shop/, beside a view of the app's API base that fails: for the
tests of the API's errors and schema under a prefix other than the service's /api/."""

from typing import Any

from django.urls import URLPattern, URLResolver, include, path
from rest_framework.request import Request
from rest_framework.response import Response

from payments.api.base import ShopApiView


class FailingApi(ShopApiView):
    """An API view with a bug."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        raise RuntimeError("a bug in an API view")


urlpatterns: list[URLPattern | URLResolver] = [
    path("shop/failing/", FailingApi.as_view()),
    path("shop/", include("payments.site_urls")),
]
