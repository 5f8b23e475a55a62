"""Security properties of the whole URL space, not of one view.

- CSRF: walking the URL resolver, the only csrf_exempt views are the IPN
  view, DRF's API views (which take a shop's API token only: a browser
  session, even a superuser's, does not open them, so there is nothing for a
  forged request to ride on: tested) and, in development only, the sandbox gateway's signed
  server-to-server API; in production (no sandbox, no demo shop) it is the
  IPN view and the API alone.
- Admin and API closed to anonymous users: every admin URL redirects to the
  login page; every orders API endpoint answers 401 for every method. The
  schema and its docs are public, as the README's endpoint table says.
- Return URLs: hosts outside the allowlist, and URLs that a browser reads
  as another host than Python does, are refused before any gateway call.
- Request size: over-large or over-many-field API bodies are refused
  (4xx, no order, never 500); the IPN's 64 KiB limit is in test_ipn_fuzz.
- Secrets: the gateway secret (as text, decoded, re-encoded), every
  Rest-Sign, and the API token appear in no log record (message, arguments,
  traceback) and in no API answer, through successful and failing IPN, API
  and gateway flows; DEBUG=0 404 and 500 pages show none of them.

tests/payments/test_ipn.py already checks CSRF on the IPN itself, the IPN's
log lines for one flow, and one return host; this extends those.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, clear_url_caches, get_resolver, reverse
from rest_framework.test import APIClient
from rest_framework.views import APIView

from payments import ipn
from payments.gateway import client as gateway_client
from payments.gateway.signing import decode_secret, sign
from payments.models import Order, Shop
from payments.testing import ipn_body, post_ipn
from sandbox.accounts import ensure_configured_account

VALID = {"reference": "order-42", "amount": "12.50", "currency": "USD"}
OTHER_SECRET = base64.b64encode(b"a secret the sandbox does not know, 48 bytes long").decode()


def walk(
    patterns: list[URLPattern | URLResolver], prefix: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def csrf_exempt_views(patterns: list[URLPattern | URLResolver]) -> dict[str, Any]:
    return {
        route: pattern.callback
        for route, pattern in walk(patterns)
        if getattr(pattern.callback, "csrf_exempt", False)
    }


def is_drf_view(callback: Any) -> bool:
    view_class = getattr(callback, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, APIView)


# --- CSRF ------------------------------------------------------------------------------------


def test_csrf_exempt_views_are_the_ipn_the_api_and_the_sandbox_gateway_only() -> None:
    exempt = csrf_exempt_views(get_resolver().url_patterns)

    plain = {route: view for route, view in exempt.items() if not is_drf_view(view)}
    service = {route: view for route, view in plain.items() if not route.startswith("sandbox/")}
    assert service == {"payments/ipn/": ipn.receive}
    # The sandbox is the gateway emulator (development only): its API is server to server,
    # authenticated by Rest-Key/Rest-Sign like the real gateway's.
    assert {view.__module__ for route, view in plain.items() if route.startswith("sandbox/")} == {
        "sandbox.api"
    }
    drf = sorted(route for route, view in exempt.items() if is_drf_view(view))
    assert drf == sorted(API_ROUTES)


def test_in_production_the_only_plain_csrf_exempt_view_is_the_ipn() -> None:
    import merchant.urls

    try:
        with override_settings(SANDBOX_ENABLED=False, DEMO_SHOP_ENABLED=False):
            production = importlib.reload(merchant.urls)
            exempt = csrf_exempt_views(production.urlpatterns)
            routes = [route for route, _ in walk(production.urlpatterns)]
    finally:
        importlib.reload(merchant.urls)
        clear_url_caches()

    assert not any(route.startswith("sandbox/") for route in routes)
    assert {route: view for route, view in exempt.items() if not is_drf_view(view)} == {
        "payments/ipn/": ipn.receive
    }


@pytest.mark.django_db
def test_a_browser_session_does_not_open_the_api() -> None:
    user = get_user_model().objects.create_superuser("boss", password="unused-password-123")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/admin/").status_code == 200  # its logout form sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value

    listed = browser.get("/api/orders/")
    created = browser.post(
        "/api/orders/", VALID, content_type="application/json", headers={"X-CSRFToken": token}
    )

    assert listed.status_code == 401 and listed.json()["error"] == "not_authenticated"
    assert created.status_code == 401 and created.json()["error"] == "not_authenticated"
    assert not Order.objects.exists()


# --- closed to anonymous users ----------------------------------------------------------------

SAMPLE_KWARGS = {
    "app_label": "payments",
    "object_id": "1",
    "content_type_id": "1",
    "id": "1",
    "url": "no/such/page/",
}
# Django's own exceptions: the login page, logout (POST only), and the public
# "view on site" shortcut (a redirect to the object's public URL, or 404).
ADMIN_PUBLIC = {"login", "logout", "view_on_site"}


def admin_urls() -> list[tuple[str, str]]:
    urls = []
    for _route, pattern in walk(admin.site.get_urls()):
        if not pattern.name or pattern.name in ADMIN_PUBLIC:
            continue
        names = set(pattern.pattern.regex.groupindex)
        kwargs = {name: SAMPLE_KWARGS[name] for name in names}
        urls.append((pattern.name, reverse(f"admin:{pattern.name}", kwargs=kwargs)))
    return urls


@pytest.mark.django_db
def test_every_admin_url_sends_anonymous_users_and_shop_users_to_the_login_page() -> None:
    urls = admin_urls()
    assert len(urls) > 40  # every registered model's changelist, add, change, delete, history
    shop = get_user_model().objects.create_user("shop", password="unused-password-123")
    shop_user = Client()
    # Logged in, not staff. force_login: Client.login() gives authenticate() no request,
    # which django-axes refuses (it counts failures per request).
    shop_user.force_login(shop)

    for client in (Client(), shop_user):
        for name, url in [*urls, ("catch-all", "/admin/no/such/page/")]:
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                assert response.status_code == 302, (name, method, url, response.status_code)
                target = urlsplit(response["Location"])
                assert target.path == "/admin/login/", (name, url, response["Location"])


API_METHODS = ("get", "post", "put", "patch", "delete", "options", "head")
API_ROUTES = {
    "api/orders/",
    "api/orders/<uuid:order_id>/",
    "api/events/",
    "api/events/replay/",
    "api/events/<str:event_id>/",
    "api/events/<str:event_id>/redeliver/",
    "api/schema/",
    "api/docs/",
    # Last, the catch-all: the JSON 404 for any other path under the API, any method,
    # token or not (tests/payments/test_api_errors.py); a DRF view like the others.
    "api/^.*$",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "Token " + "0" * 40, "Token", "Bearer abc", "Basic YWRtaW46YWRtaW4=", "Token a b"],
)
def test_every_orders_and_events_api_endpoint_is_401_without_a_valid_token(
    make_order: Callable[..., Order], authorization: str | None
) -> None:
    order = make_order()
    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    routes = [route for route, _ in walk(get_resolver().url_patterns) if route.startswith("api/")]
    assert set(routes) == API_ROUTES
    event = uuid.uuid4()
    urls = (
        "/api/orders/",
        f"/api/orders/{order.pk}/",
        f"/api/orders/{uuid.uuid4()}/",
        "/api/events/",
        "/api/events/replay/",
        f"/api/events/{event}/",
        f"/api/events/{event}/redeliver/",
    )

    for url in urls:
        for method in API_METHODS:
            response = getattr(client, method)(url, VALID, format="json")
            assert response.status_code == 401, (url, method, response.status_code)
            assert response.has_header("WWW-Authenticate")
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_the_schema_and_docs_are_public_as_documented(settings: Any) -> None:
    # README, Endpoints: `/api/schema/`, `/api/docs/` are for developers, with no token.
    anonymous = Client()
    schema = anonymous.get("/api/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    assert anonymous.get("/api/docs/").status_code == 200
    text = schema.content.decode()
    assert "tokenAuth" in text  # it documents the token, and holds no credentials
    for secret in (settings.GATEWAY_API_SECRET, settings.GATEWAY_API_KEY):
        assert secret not in text


# --- return URLs ---------------------------------------------------------------------------

HOSTILE_RETURN_URLS = [
    "https://evil.example/phish",
    "//evil.example/",
    "//shop.example/",
    "///evil.example",
    "http:evil.example",
    "http:/evil.example",
    "https:\\\\evil.example",
    "http://evil.example\\@shop.example/",  # browsers: host evil.example; urlsplit: shop.example
    "http://evil.example\\.shop.example/",
    "http://shop.example@evil.example/",
    "http://shop.example:443@evil.example/",
    "http://evil.example@shop.example/",  # user info: a phishing look, never needed
    "http://evil.example#@shop.example",
    "http://evil.example?@shop.example",
    "http://shop.example.evil.example/",
    "http://evil.example/shop.example",
    "http://evilshop.example/",
    "http://sh\u043ep.example/",  # Cyrillic o
    "http://xn--shp-vdd.example/",
    "http://evil.example\tshop.example/",
    "http://evil.example%0a.shop.example/",
    "http://[evil.example/",  # unclosed IPv6 bracket: must be a 400, not a crash
    "ftp://shop.example/",
    "javascript://shop.example/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "shop.example/thanks",
    "\x00http://shop.example/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["return_success", "return_failure"])
@pytest.mark.parametrize("url", HOSTILE_RETURN_URLS)
def test_hostile_return_urls_are_a_400_before_the_gateway(
    api_token: str, settings: Any, field: str, url: str
) -> None:
    settings.PAYMENTS_RETURN_HOSTS = ["shop.example"]
    settings.GATEWAY_API_URL = "http://127.0.0.1:9/never-called/"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")

    response = client.post("/api/orders/", {**VALID, field: url}, format="json")

    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert field in response.json()["fields"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/thanks",
        "http://SHOP.example/thanks?order=42#top",
        "https://shop.example:8443/back",
        "http://127.0.0.1:8000/",  # the service's own host (PUBLIC_BASE_URL)
    ],
)
def test_allowed_return_urls_pass_validation(settings: Any, url: str) -> None:
    from payments.api.serializers import OrderCreateInput

    settings.PAYMENTS_RETURN_HOSTS = ["shop.example"]
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    default_shop = Shop(name="default", is_default=True)  # its hosts: PAYMENTS_RETURN_HOSTS
    given = OrderCreateInput(
        data={**VALID, "return_success": url, "return_failure": url},
        context={"shop": default_shop},
    )
    assert given.is_valid(), given.errors


# --- request sizes ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_over_large_bodies_over_many_fields_and_forms_are_refused_by_the_api(
    api_token: str, settings: Any
) -> None:
    settings.GATEWAY_API_URL = "http://127.0.0.1:9/never-called/"
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    huge_json = json.dumps({**VALID, "description": "x" * (limit + 1)})
    response = client.post("/api/orders/", huge_json, content_type="application/json")
    assert (response.status_code, response.json()["error"]) == (413, "too_large")

    many = "&".join(f"f{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.get(f"/api/orders/?{many}")
    assert (response.status_code, response.json()["error"]) == (413, "too_large")

    # The API reads JSON only: a form is refused before it is parsed.
    response = client.post(
        "/api/orders/",
        "reference=r&amount=1&currency=USD&" + many,
        content_type="application/x-www-form-urlencoded",
    )
    assert (response.status_code, response.json()["error"]) == (415, "unsupported_media_type")
    assert not Order.objects.exists()


# --- secrets ---------------------------------------------------------------------------------


class SignatureSpy:
    """Records every Rest-Sign the gateway client computes (it still signs for real)."""

    def __init__(self) -> None:
        self.signatures: list[str] = []

    def __call__(self, body: bytes, secret: str | bytes) -> str:
        signature = sign(body, secret)
        self.signatures.append(signature)
        return signature


def secret_forms(secret: str) -> list[str]:
    raw = decode_secret(secret)
    forms = [
        secret,
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        repr(raw)[2:-1],
    ]
    if raw.isascii():
        forms.append(raw.decode())
    return forms


def record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), record.exc_text or "", record.stack_info or ""]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    parts.append(repr({k: v for k, v in vars(record).items() if k not in ("args", "msg")}))
    return "\n".join(parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_no_secret_signature_or_token_reaches_a_log_record_or_an_api_answer(
    live_gateway: str,
    api_token: str,
    make_order: Callable[..., Order],
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    spy = SignatureSpy()
    monkeypatch.setattr(gateway_client, "sign", spy)
    ensure_configured_account()
    our_secret = settings.GATEWAY_API_SECRET
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
    ipn_client = Client(raise_request_exception=False)
    answers: list[bytes] = []
    sent_signatures: list[str] = []

    def post_signed(body: bytes, secret: str = our_secret) -> None:
        sent_signatures.append(sign(body, secret))
        answers.append(post_ipn(ipn_client, body, api_secret=secret).content)

    # The API and the gateway: accepted, refused (we sign with a secret it does not know),
    # unreachable, a bad token, reads.
    created = api.post("/api/orders/", VALID, format="json")
    assert created.status_code == 201, created.content
    answers.append(created.content)
    settings.GATEWAY_API_SECRET = OTHER_SECRET
    refused = api.post("/api/orders/", {**VALID, "reference": "refused"}, format="json")
    assert refused.status_code == 502, refused.content
    answers.append(refused.content)
    settings.GATEWAY_API_SECRET = our_secret
    settings.GATEWAY_API_URL = f"http://127.0.0.1:{free_port()}/api/"
    unreachable = api.post("/api/orders/", {**VALID, "reference": "down"}, format="json")
    assert unreachable.status_code == 503, unreachable.content
    answers.append(unreachable.content)
    answers.append(api.get("/api/orders/").content)
    answers.append(api.get(f"/api/orders/{created.json()['id']}/").content)
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION=f"Token {api_token[:-1]}x")
    answers.append(bad_token.get("/api/orders/").content)

    # The IPN: authentic, forged with another secret, malformed, unknown key.
    order = make_order()
    post_signed(ipn_body(transaction=order.transaction, status="paid", amount_int=1))
    post_signed(ipn_body(transaction=order.transaction, status="paid", amount_int=2), OTHER_SECRET)
    post_signed(b"status=paid&id=\xff")
    answers.append(
        post_ipn(
            ipn_client, b"status=paid", api_key=str(uuid.uuid4()), api_secret=our_secret
        ).content
    )

    assert len(spy.signatures) >= 3  # the client did sign: the check below is not vacuous
    forbidden = {
        *secret_forms(our_secret),
        *secret_forms(OTHER_SECRET),
        *spy.signatures,
        *sent_signatures,
        api_token,
    }
    logged = [record_text(record) for record in caplog.records]
    assert any("IPN rejected" in text for text in logged)
    assert any("gateway" in text.lower() for text in logged)
    for value in forbidden:
        leaks = [text[:200] for text in logged if value in text]
        assert not leaks, (value[:12], leaks)
        assert not [a for a in answers if value.encode() in a], value[:12]


@pytest.mark.django_db
def test_production_error_pages_show_no_secret_or_detail(
    settings: Any, api_token: str, make_order: Callable[..., Order], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = False
    order = make_order()
    client = Client(raise_request_exception=False)

    not_found = client.get(f"/no/such/page/?token={api_token}")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"a bug next to {settings.GATEWAY_API_SECRET[:0]}")

    monkeypatch.setattr("payments.views.get_object_or_404", broken)
    server_error = client.get(f"/checkout/{order.pk}/", headers={"Authorization": api_token})

    assert not_found.status_code == 404
    assert server_error.status_code == 500
    for page in (not_found, server_error):
        text = page.content.decode()
        for value in (
            *secret_forms(settings.GATEWAY_API_SECRET),
            settings.GATEWAY_API_KEY,
            api_token,
            "Traceback",
            "GATEWAY_",
            "RuntimeError",
            "a bug next to",
        ):
            assert value not in text, (page.status_code, value[:12])
