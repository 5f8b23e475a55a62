"""The base of every API view: the shop's token, JSON in and out, the one error body,
drawn in the schema by drf-spectacular.

Named here rather than left to REST_FRAMEWORK's defaults, so the API behaves the
same inside a shop's own Django project, whose defaults may open views to a
session login or answer errors in DRF's own shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import Resolver404, resolve
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from payments.api.authentication import ShopTokenAuthentication, ShopTokenRequired
from payments.api.errors import NO_OPERATION, ApiError, api_exception_handler
from payments.api.openapi import ApiAutoSchema


class ShopApiView(APIView):
    authentication_classes = [ShopTokenAuthentication]
    permission_classes = [ShopTokenRequired]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    # The schema page (payments.api.schema) needs no REST_FRAMEWORK DEFAULT_SCHEMA_CLASS.
    schema = ApiAutoSchema()

    def get_exception_handler(self) -> Callable[..., Any]:
        return api_exception_handler


class ApiNotFoundView(APIView):
    """Any path under the API that no operation has (last in payments.api.urls): the
    API's JSON 404, whatever the method, with a token or without, under any prefix.

    A DRF view like the API's (CSRF-exempt, no session), not Django's HTML 404,
    which a host project without ApiErrorMiddleware would answer.
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    schema = None  # no operation: not in the schema

    def get_exception_handler(self) -> Callable[..., Any]:
        return api_exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        raise ApiError("not_found", _why_not_found(request.path_info))


def _why_not_found(path: str) -> str:
    """NO_OPERATION, naming the path with its slash when only the slash is missing (Django's
    APPEND_SLASH redirect would turn a POST into a GET and drop its body)."""
    if path.endswith("/"):
        return NO_OPERATION
    try:
        match = resolve(f"{path}/")
    except Resolver404:
        return NO_OPERATION
    if getattr(match.func, "view_class", None) is ApiNotFoundView:
        return NO_OPERATION
    return f"{NO_OPERATION} API paths end with a slash: {path}/"
