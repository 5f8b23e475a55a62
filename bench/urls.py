"""The project's URLs plus the two baselines the benchmarks compare against.

Both baselines sit behind the same middleware and server as the views they
are compared with, and are appended after the project's URLs so that URL
resolution costs them at least as much as it costs the real views.

- /bench/minimal/      a plain Django function view answering "ok" (text/plain)
- /bench/minimal-drf/  a DRF APIView with the project's default authentication
                       and permission classes (a shop's API token) answering {"ok": true}
- /bench/orders-floor/  the floor under POST /api/orders/: auth, insert, one gateway call,
                       store the answer (bench.orders_floor)
- /bench/ipn-store-only/  the floor under the IPN view: verify, store, commit (bench.ipn_floor)
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench import ipn_floor
from bench.orders_floor import OrdersFloor
from merchant.urls import urlpatterns as project_urlpatterns


@csrf_exempt  # POSTed like the IPN view, which is csrf_exempt too
def minimal(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


class MinimalDrf(APIView):
    """DEFAULT_AUTHENTICATION_CLASSES and DEFAULT_PERMISSION_CLASSES, nothing else."""

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"ok": True})

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"ok": True})


urlpatterns = [
    *project_urlpatterns,
    path("bench/minimal/", minimal, name="bench-minimal"),
    path("bench/minimal-drf/", MinimalDrf.as_view(), name="bench-minimal-drf"),
    path("bench/orders-floor/", OrdersFloor.as_view(), name="bench-orders-floor"),
    path("bench/ipn-store-only/", ipn_floor.store_only, name="bench-ipn-store-only"),
]
