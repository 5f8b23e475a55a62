"""Every error under /api/ is one JSON body: {"error": code, "detail": text[, "fields"][, "order"]}.

Each kind of error is asked for through the whole stack (URL routing, DRF,
the views): Django's own 404 for a path no operation has, DRF's parse, media
type, method and Accept refusals, validation, the token refusals, the
read-only token, the throttle, another shop's order, the gateway failing.
Outside /api/ the site keeps its HTML pages.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.views.defaults import server_error
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from payments.api.error_codes import CODES
from payments.api.errors import ApiErrorMiddleware, error_body
from payments.models import ApiToken, Order
from payments.services.shops import api_token_revoke, shop_disable
from payments.shops import api_token_digest, shop_default
from tests.factories import api_token_key, shop_with_account

pytestmark = pytest.mark.django_db

VALID = {"reference": "order-42", "amount": "12.50", "currency": "USD"}
KEYS = {"error", "detail", "fields", "order"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one error body: JSON, a known code, a text; `fields` only for `invalid`."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body: dict[str, Any] = json.loads(response.content)
    assert body["error"] == code
    assert code in CODES and CODES[code].status == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert body.keys() <= KEYS
    assert ("fields" in body) == (code == "invalid")
    return body


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


# --- Django's answers under /api/ -------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/nothing/", "/api/orders/not-a-uuid/", "/api/orders/1/extra/", "/api/"]
)
def test_a_path_no_operation_has_is_a_json_404(api_client: APIClient, path: str) -> None:
    assert_error(api_client.get(path), 404, "not_found")


def test_a_path_missing_only_its_slash_is_a_404_naming_the_path_with_it(
    api_client: APIClient,
) -> None:
    # Not Django's redirect: a POST redirected would be sent again as a GET, without its body.
    missing_slash = api_client.post("/api/orders", {"reference": "r"}, format="json")
    nowhere = api_client.post("/api/nothing", {}, format="json")

    assert_error(missing_slash, 404, "not_found")
    assert missing_slash.json()["detail"].endswith("API paths end with a slash: /api/orders/")
    assert_error(nowhere, 404, "not_found")
    assert "slash" not in nowhere.json()["detail"]


def test_a_json_404_without_a_token_too(client: Client) -> None:
    assert_error(client.get("/api/orders/not-a-uuid/"), 404, "not_found")


def test_outside_the_api_the_404_stays_an_html_page(client: Client) -> None:
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_server_error_under_the_api_is_json_and_elsewhere_html() -> None:
    def crash(request: HttpRequest) -> HttpResponse:
        return server_error(request)  # what Django answers for an uncaught exception

    middleware = ApiErrorMiddleware(crash)
    factory = RequestFactory()

    assert_error(middleware(factory.get("/api/orders/")), 500, "server_error")
    assert middleware(factory.get("/checkout/x/"))["Content-Type"].startswith("text/html")


MOUNTED = "tests.payments.mounted_urls"  # the app under /shop/, as a host project mounts it


@pytest.mark.urls(MOUNTED)
def test_a_bug_in_an_api_view_is_a_logged_json_500(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    assert_error(client.get("/shop/failing/"), 500, "server_error")

    logged = [r for r in caplog.records if r.name == "payments.api.errors" and r.exc_info]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == ["a bug in an API view"]


@pytest.mark.urls(MOUNTED)
@pytest.mark.parametrize("path", ["/shop/api/nothing/", "/shop/api/orders/not-a-uuid/"])
def test_under_any_prefix_a_path_no_operation_has_is_a_json_404(client: Client, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")
    assert_error(client.post(path, {"a": 1}), 404, "not_found")  # no CSRF page either


@pytest.mark.urls(MOUNTED)
def test_the_middleware_finds_the_apis_prefix_in_the_urlconf() -> None:
    def crash(request: HttpRequest) -> HttpResponse:
        return server_error(request)

    middleware = ApiErrorMiddleware(crash)
    factory = RequestFactory()

    assert_error(middleware(factory.get("/shop/api/orders/")), 500, "server_error")
    assert middleware(factory.get("/api/orders/"))["Content-Type"].startswith("text/html")


# --- DRF's refusals -----------------------------------------------------------------------


def test_a_body_that_is_not_json_is_a_400_parse_error(api_client: APIClient) -> None:
    response = api_client.post("/api/orders/", "{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")
    assert not Order.objects.exists()


def test_a_body_of_another_media_type_is_a_415(api_client: APIClient) -> None:
    response = api_client.post("/api/orders/", "reference=r", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("method", "path"), [("delete", "/api/orders/"), ("post", "/api/orders/{}/")]
)
def test_a_method_the_path_does_not_offer_is_a_405(
    api_client: APIClient, make_order: Any, method: str, path: str
) -> None:
    response = getattr(api_client, method)(path.format(make_order().id))
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"]


def test_an_accept_other_than_json_is_a_406(api_client: APIClient) -> None:
    assert_error(api_client.get("/api/orders/", HTTP_ACCEPT="text/html"), 406, "not_acceptable")


# --- the API's own ------------------------------------------------------------------------


def test_invalid_fields_are_a_400_listing_each_fields_messages(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/orders/", {**VALID, "currency": "XYZ", "reference": ""}, format="json"
    )

    body = assert_error(response, 400, "invalid")
    assert body["fields"].keys() == {"currency", "reference"}
    assert all(isinstance(m, str) for messages in body["fields"].values() for m in messages)
    assert "currency" in body["detail"] and "reference" in body["detail"]


def test_a_bad_filter_is_a_400_invalid(api_client: APIClient) -> None:
    body = assert_error(api_client.get("/api/orders/", {"status": "nonsense"}), 400, "invalid")
    assert list(body["fields"]) == ["status"]


def test_errors_not_of_one_field_and_nested_ones_are_fields_too() -> None:
    assert error_body(ValidationError("Not both."))["fields"] == {"non_field_errors": ["Not both."]}
    nested = ValidationError({"items": [{"sku": ["Unknown."]}, {}], "note": "Too long."})
    assert error_body(nested)["fields"] == {"items.0.sku": ["Unknown."], "note": ["Too long."]}


def test_an_unusable_idempotency_key_and_a_foreign_cursor_are_400s(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/orders/", VALID, format="json", headers={"Idempotency-Key": "k" * 256}
    )
    assert_error(response, 400, "invalid_idempotency_key")
    assert_error(api_client.get("/api/orders/", {"cursor": "cD1nYXJiYWdl"}), 400, "invalid_cursor")


def test_another_shops_order_is_the_same_404_as_a_missing_one(make_order: Any) -> None:
    theirs = make_order()
    other = token_client(api_token_key(shop=shop_with_account("other")))

    foreign = assert_error(other.get(f"/api/orders/{theirs.id}/"), 404, "not_found")
    missing = other.get("/api/orders/00000000-0000-4000-8000-000000000000/")
    assert foreign == assert_error(missing, 404, "not_found")
    assert foreign == {"error": "not_found", "detail": "No such order."}


# --- tokens -------------------------------------------------------------------------------


def refusal(client: APIClient, code: str) -> None:
    for response in (client.get("/api/orders/"), client.post("/api/orders/", VALID, format="json")):
        body = assert_error(response, 401, code)
        assert body == {"error": code, "detail": CODES[code].detail}
        assert response["WWW-Authenticate"] == 'Token realm="api"'


def test_no_token_and_an_unknown_one_are_401s_that_say_which(db: None) -> None:
    refusal(APIClient(), "not_authenticated")
    refusal(token_client("0" * 40), "invalid_token")


def test_a_revoked_token_and_a_disabled_shops_are_401s_that_say_which(db: None) -> None:
    revoked = api_token_key(name="revoked")
    api_token_revoke(token=ApiToken.objects.get(key_sha256=api_token_digest(revoked)))
    refusal(token_client(revoked), "token_revoked")

    key = api_token_key(name="kept")
    shop_disable(shop=shop_default())
    refusal(token_client(key), "shop_disabled")


def test_a_read_only_token_creating_is_a_403(db: None) -> None:
    reader = token_client(api_token_key(read_only=True))
    response = reader.post("/api/orders/", VALID, format="json")

    assert assert_error(response, 403, "read_only_token") == {
        "error": "read_only_token",
        "detail": "This API token is read-only.",
    }


# --- creation refused or failed -----------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_gateway_failure_names_the_order_and_the_throttle_is_a_429(
    api_client: APIClient, settings: Any
) -> None:
    settings.API_ORDER_CREATE_RATE = "1/min"
    settings.GATEWAY_API_URL = f"http://127.0.0.1:{closed_port()}/api/"

    failed = api_client.post("/api/orders/", VALID, format="json")
    throttled = api_client.post("/api/orders/", VALID, format="json")

    body = assert_error(failed, 503, "gateway_unavailable")
    assert Order.objects.get(pk=body["order"]).status == "failed"
    assert assert_error(throttled, 429, "throttled").keys() == {"error", "detail"}
    assert int(throttled["Retry-After"]) > 0
    assert Order.objects.count() == 1
