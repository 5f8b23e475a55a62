"""The base of every API view: the shop's token, JSON in and out, the one error body.

Named here rather than left to REST_FRAMEWORK's defaults, so the API behaves the
same inside a shop's own Django project, whose defaults may open views to a
session login or answer errors in DRF's own shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from payments.api.authentication import ShopTokenAuthentication, ShopTokenRequired
from payments.api.errors import api_exception_handler


class ShopApiView(APIView):
    authentication_classes = [ShopTokenAuthentication]
    permission_classes = [ShopTokenRequired]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self) -> Callable[..., Any]:
        return api_exception_handler
