"""The sandbox gateway's HTTP API (MtGox API v1 paths), under /sandbox/api/.

Thin views: each check answers the contract's error envelope, in the
contract's order: User-Agent, body size, Rest-Key, Rest-Sign (over the raw
body bytes), nonce, then parameters. The work happens in services/selectors.
These views are csrf_exempt: it is a server-to-server API authenticated by
the signature, not by cookies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from payments import http_body, money
from payments.exceptions import BodyTooLarge, LengthRequired
from payments.gateway import signing
from sandbox import currencies, params, selectors, services
from sandbox.accounts import account_for_key
from sandbox.exceptions import ApiError, NonceRejected, ParameterError
from sandbox.models import SandboxAccount


def success(result: Any) -> JsonResponse:
    return JsonResponse({"result": "success", "return": result})


def error(token: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"result": "error", "error": message, "token": token}, status=status)


def _invalid_parameter(exc: ParameterError) -> ApiError:
    return ApiError("invalid_parameter", exc.message, 400)


def _max_body() -> int:
    return int(settings.SANDBOX_MAX_REQUEST_BYTES)


def _check_user_agent(request: HttpRequest) -> None:
    if not request.headers.get("User-Agent", "").strip():
        raise ApiError("user_agent_required", "a valid User-Agent header is required", 403)


def _body(request: HttpRequest) -> bytes:
    """The raw body, with a Content-Length or chunked, within SANDBOX_MAX_REQUEST_BYTES."""
    try:
        return http_body.read_body(request, limit=_max_body())
    except BodyTooLarge as exc:
        raise ApiError("request_too_large", str(exc), 413) from exc
    except LengthRequired as exc:
        raise ApiError("length_required", "send the body with a Content-Length", 411) from exc


def _authenticate(request: HttpRequest, body: bytes) -> SandboxAccount:
    account = account_for_key(rest_key=request.headers.get("Rest-Key"))
    if account is None:
        raise ApiError(
            "login_error_invalid_rest_key", "Rest-Key is missing, not a uuid, or unknown", 403
        )
    try:
        valid = signing.verify(body, request.headers.get("Rest-Sign"), account.secret)
    except signing.InvalidSecret:
        valid = False
    if not valid:
        raise ApiError(
            "login_error_invalid_rest_sign", "Rest-Sign is not the signature of the body", 403
        )
    return account


def _nonce_error() -> ApiError:
    return ApiError(
        "login_error_invalid_nonce",
        "the nonce is missing, not an integer, or not greater than the last one accepted",
        403,
    )


PrivateAction = Callable[[SandboxAccount, params.FormData], Any]
View = Callable[..., HttpResponse]


def private_method(action: PrivateAction) -> View:
    """A private method: POST, authenticated, a fresh nonce; `action` runs with the nonce."""

    @csrf_exempt
    @functools.wraps(action)
    def view(request: HttpRequest) -> HttpResponse:
        try:
            _check_user_agent(request)
            if request.method != "POST":
                raise ApiError("method_not_allowed", "private methods are called with POST", 405)
            body = _body(request)
            account = _authenticate(request, body)
            try:
                form = params.parse_form(body)
            except ParameterError as exc:
                raise _invalid_parameter(exc) from exc
            nonce = params.parse_nonce(form)
            if nonce is None:
                raise _nonce_error()
            try:
                result = services.private_call(
                    account=account, nonce=nonce, action=lambda: action(account, form)
                )
            except NonceRejected as exc:
                raise _nonce_error() from exc
            except ParameterError as exc:
                raise _invalid_parameter(exc) from exc
            return success(result)
        except ApiError as exc:
            return error(exc.token, exc.message, exc.status)

    return view


def _public_form(request: HttpRequest) -> params.FormData:
    """A public method's parameters: the query string's, then (POST) the body's.

    The protocol pages write them in the query string (`1/generic/currency?currency=USD`,
    a URL a browser opens) while every call of its clients is a POST with a form body:
    both are read, and a parameter given in both counts as repeated.
    """
    pairs = [(name, value) for name, values in request.GET.lists() for value in values]
    if request.method == "POST":
        try:
            pairs += params.parse_form(_body(request)).pairs
        except ParameterError as exc:
            raise _invalid_parameter(exc) from exc
    return params.FormData(pairs)


def public_method(action: Callable[..., Any]) -> View:
    """A public method: GET or POST, parameters in the query string or the body; no keys."""

    @csrf_exempt
    @functools.wraps(action)
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        try:
            _check_user_agent(request)
            if request.method not in ("GET", "POST"):
                raise ApiError("method_not_allowed", "use GET or POST", 405)
            form = _public_form(request)
            try:
                return success(action(form, **kwargs))
            except ParameterError as exc:
                raise _invalid_parameter(exc) from exc
        except ApiError as exc:
            return error(exc.token, exc.message, exc.status)

    return view


# --- The methods ---------------------------------------------------------------


def _order_create(account: SandboxAccount, form: params.FormData) -> dict[str, str]:
    order = services.order_create(account=account, data=params.parse_order(form))
    return {"transaction": str(order.transaction), "payment_url": payment_url(order.transaction)}


def payment_url(transaction: object) -> str:
    host = settings.GATEWAY_PAYMENT_HOST.rstrip("/")
    return f"{host}/pay/{transaction}"


def _info(account: SandboxAccount, form: params.FormData) -> dict[str, Any]:
    account.refresh_from_db(fields=["last_login", "last_nonce"])
    return selectors.account_info(account)


def _history(account: SandboxAccount, form: params.FormData) -> dict[str, Any]:
    return selectors.wallet_history(account, params.parse_history(form))


def _ticker(form: params.FormData, currency: str) -> dict[str, Any]:
    if currency not in money.FIAT_CURRENCIES:
        raise ParameterError("currency", f"unknown currency {currency[:10]!r} for BTC<CUR>/ticker")
    return currencies.ticker(currency)


def _currency(form: params.FormData) -> dict[str, str]:
    return currencies.currency_description(params.parse_currency(form.get("currency")))


order_create = private_method(_order_create)
info = private_method(_info)
wallet_history = private_method(_history)
ticker = public_method(_ticker)
currency = public_method(_currency)


@csrf_exempt
def unknown_method(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    if not request.headers.get("User-Agent", "").strip():
        return error("user_agent_required", "a valid User-Agent header is required", 403)
    return error("unknown_method", "no such method", 404)
