"""The API's one error body, for every 4xx and 5xx under /api/.

    {"error": "<code>", "detail": "<text>", "fields": {"<field>": ["<message>", ...]}}

`fields` only for a validation error (`invalid`); a gateway failure adds `order`.
Views raise DRF exceptions (or `ApiError` with a code of `error_codes.CODES`) and
`api_exception_handler` (every API view's, `payments.api.base.ShopApiView`) writes
the body, a bug's 500 included; `base.ApiNotFoundView` answers any path under the
API that no operation has. `ApiErrorMiddleware` (the service's; a host project may add it)
gives what is refused before a view under the API (a Host not allowed, another
middleware's refusal) the same body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, get_script_prefix, reverse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler, set_rollback

from payments.api.error_codes import CODES

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error of `CODES`: its status, its text (or `detail`); `extra` adds documented keys."""

    def __init__(self, code: str, detail: str | None = None, **extra: str) -> None:
        self.status_code = CODES[code].status
        self.extra = extra
        super().__init__(detail or CODES[code].detail, code=code)


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail, "")
        text = f"Not valid: {', '.join(fields)}. Each field's messages are in fields."
        return {"error": "invalid", "detail": text, "fields": fields}
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    detail = exc.detail if isinstance(exc.detail, str) else exc.default_detail
    return {"error": code, "detail": str(detail), **getattr(exc, "extra", {})}


def _fields(detail: Any, name: str) -> dict[str, list[str]]:
    """DRF's nested errors as one level: {"amount": [...], "items.0.sku": [...]}."""
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(detail, dict):
        pairs = detail.items()
    elif isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        pairs = enumerate(detail)
    else:
        messages = detail if isinstance(detail, list) else [detail]
        return {name or api_settings.NON_FIELD_ERRORS_KEY: [str(m) for m in messages]}
    found: dict[str, list[str]] = {}
    for key, value in pairs:
        found.update(_fields(value, f"{name}.{key}" if name else str(key)))
    return found


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler (status, WWW-Authenticate, Retry-After, rollback), with the API's body."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        exc = ApiError("too_large")  # Django's text names its settings: not for callers
    response = exception_handler(exc, context)
    if response is None:
        # Not an API error but a bug: logged with its traceback, answered in the one body
        # (also with DEBUG on: callers and generated clients read JSON, not a debug page).
        view = context.get("view")
        logger.exception("API view %s failed", type(view).__name__, exc_info=exc)
        set_rollback()  # as for an exception that leaves the view: nothing half-written
        return Response(
            {"error": "server_error", "detail": CODES["server_error"].detail}, status=500
        )
    assert isinstance(exc, exceptions.APIException)
    response.data = error_body(exc)
    return response


# Django's own answers: the code for a status (other statuses: HTTP's phrase as a code).
DJANGO_CODES = {400: "bad_request", 404: "not_found", 413: "too_large", 500: "server_error"}
NO_OPERATION = "Nothing here: no API operation has this path."


def api_path_prefix() -> str:
    """Where the URLconf mounts the API ("/api/" in the service; "/payments/api/" under
    payments.site_urls), from its schema's URL, as a path_info (no script prefix)."""
    try:
        url = reverse("api-schema")
    except NoReverseMatch:  # the API is not mounted: nothing is under it
        return "\0"
    return "/" + url.removeprefix(get_script_prefix()).removesuffix("schema/")


class ApiErrorMiddleware:
    """Django's own error pages under the API as the API's error body.

    The views and the URLconf's catch-all answer the rest; this layer sees what
    happens before a view (a Host refused by ALLOWED_HOSTS, another middleware's
    refusal). First in MIDDLEWARE: it sees what every
    other layer answers. The rest of the site keeps its HTML pages.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not request.path_info.startswith(api_path_prefix()):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response  # DRF's, already in the API's shape
        return django_error(response.status_code)


def django_error(status: int) -> JsonResponse:
    code = DJANGO_CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")
    known = CODES.get(code)
    detail = NO_OPERATION if status == 404 else None
    text = detail or (known.detail if known else HTTPStatus(status).description)
    return JsonResponse({"error": code, "detail": text}, status=status)
