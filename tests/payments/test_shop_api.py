"""The API per shop, over real HTTP: each shop's token sees, filters and creates its own orders.

Two shops, each with its own sandbox merchant account and API token, against the
service and the sandbox on one live server. Shop B's token never shows shop A's
orders: A's order id is the same 404 as a missing one, A's orders are absent from
B's list and filters, Idempotency-Keys do not cross shops, and A's return hosts
are not B's. Tokens: `Token` or `Bearer`, read-only ones may not create, revoked
ones, unknown ones and a disabled shop's are a 401 that says which, and a
token's last use is recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from payments.exceptions import ShopInactive
from payments.models import ApiToken, Order, Shop
from payments.services import NewOrder, order_create
from payments.services.shops import api_token_create, api_token_revoke, shop_disable
from payments.shops import api_token_digest, shop_default
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxOrder
from tests.factories import shop_with_account

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"reference": "order-1", "amount": "0.5", "currency": "BTC"}


@dataclass
class Caller:
    """A shop backend calling the API over HTTP with one of its tokens."""

    base_url: str
    key: str
    scheme: str = "Token"

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        return {"Authorization": f"{self.scheme} {self.key}", **extra}

    def create(
        self, body: dict[str, Any] | None = None, *, idempotency_key: str | None = None
    ) -> requests.Response:
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return requests.post(
            f"{self.base_url}/api/orders/",
            json=body or BODY,
            headers=self._headers(extra),
            timeout=30,
        )

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(
            f"{self.base_url}{path}", params=params, headers=self._headers({}), timeout=30
        )

    def ids(self, **params: str) -> set[str]:
        answer = self.get("/api/orders/", **params)
        assert answer.status_code == 200, answer.text
        return {order["id"] for order in answer.json()["results"]}


def caller(base_url: str, shop: Shop, **options: Any) -> Caller:
    scheme = options.pop("scheme", "Token")
    _, key = api_token_create(shop=shop, name="test", **options)
    return Caller(base_url, key, scheme)


@pytest.fixture
def shop_a(live_gateway: str) -> Shop:
    return shop_with_account("shop-a", return_hosts=["a-shop.example"])


@pytest.fixture
def shop_b(live_gateway: str) -> Shop:
    return shop_with_account("shop-b")


@pytest.fixture
def a(live_gateway: str, shop_a: Shop) -> Caller:
    return caller(live_gateway, shop_a)


@pytest.fixture
def b(live_gateway: str, shop_b: Shop) -> Caller:
    return caller(live_gateway, shop_b)


def created(answer: requests.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


# --- what each shop sees ------------------------------------------------------------------


def test_each_shop_creates_with_its_own_gateway_account(
    a: Caller, b: Caller, shop_a: Shop, shop_b: Shop
) -> None:
    mine, theirs = created(a.create()), created(b.create())

    for answer, shop in ((mine, shop_a), (theirs, shop_b)):
        order = Order.objects.get(pk=answer["id"])
        assert order.shop == shop
        assert order.api_token is not None and order.api_token.shop == shop
        assert order.created_by is None  # a token is no Django user
        at_gateway = SandboxOrder.objects.get(transaction=answer["transaction"])
        assert at_gateway.account.api_key == shop.gateway_key


def test_another_shops_order_is_the_same_404_as_a_missing_one(a: Caller, b: Caller) -> None:
    order = created(a.create())

    theirs = b.get(f"/api/orders/{order['id']}/")
    missing = b.get(f"/api/orders/{uuid.uuid4()}/")

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"error": "not_found", "detail": "No such order."}
    assert a.get(f"/api/orders/{order['id']}/").status_code == 200


def test_lists_and_filters_show_only_the_callers_orders(a: Caller, b: Caller) -> None:
    a_ids = {created(a.create({**BODY, "reference": f"a-{n}"}))["id"] for n in range(2)}
    b_ids = {created(b.create({**BODY, "reference": "b-1"}))["id"]}

    assert a.ids() == a_ids and b.ids() == b_ids
    assert b.ids(status="awaiting_payment") == b_ids
    assert b.ids(reference="a-0") == set()  # A's reference: nothing for B
    assert a.ids(reference="a-0") == {str(Order.objects.get(reference="a-0").pk)}
    assert b.ids(page_size="1") == b_ids  # pagination walks B's orders only
    assert a.ids(status="paid") == set()


def test_the_default_shop_sees_none_of_the_other_shops_orders(
    live_gateway: str, a: Caller, b: Caller
) -> None:
    ensure_configured_account()
    default = caller(live_gateway, shop_default())
    created(a.create())
    created(b.create())

    mine = created(default.create())

    assert default.ids() == {mine["id"]}


def test_idempotency_keys_do_not_cross_shops(a: Caller, b: Caller) -> None:
    first = created(a.create(idempotency_key="order-1-attempt"))
    other_shop = created(b.create(idempotency_key="order-1-attempt"))
    again = a.create(idempotency_key="order-1-attempt")

    assert other_shop["id"] != first["id"]  # the same key and body: B's own new order
    assert (again.status_code, again.json()["id"]) == (200, first["id"])
    assert SandboxOrder.objects.count() == 2


# --- tokens -------------------------------------------------------------------------------


def test_bearer_is_accepted_as_token_is(live_gateway: str, shop_b: Shop, b: Caller) -> None:
    mine = created(b.create())
    bearer = caller(live_gateway, shop_b, scheme="Bearer")

    assert bearer.ids() == {mine["id"]}
    assert created(bearer.create({**BODY, "reference": "by-bearer"}))["reference"] == "by-bearer"


def test_a_read_only_token_reads_but_may_not_create(
    live_gateway: str, shop_b: Shop, b: Caller
) -> None:
    order = created(b.create())
    reader = caller(live_gateway, shop_b, read_only=True)

    assert reader.get(f"/api/orders/{order['id']}/").status_code == 200
    assert reader.ids() == {order["id"]}
    refused = reader.create({**BODY, "reference": "by-reader"})

    assert refused.status_code == 403
    assert refused.json() == {"error": "read_only_token", "detail": "This API token is read-only."}
    assert not Order.objects.filter(reference="by-reader").exists()
    assert SandboxOrder.objects.count() == 1


def assert_refused(answer: requests.Response, error: str) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == error
    assert answer.headers["WWW-Authenticate"] == 'Token realm="api"'


def test_a_revoked_token_is_a_401_that_says_so(b: Caller) -> None:
    api_token_revoke(token=ApiToken.objects.get(key_sha256=api_token_digest(b.key)))

    assert_refused(b.get("/api/orders/"), "token_revoked")
    assert_refused(b.create(), "token_revoked")
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "authorization",
    ["Token mp_" + "0" * 64, "Bearer mp_" + "0" * 64, "Token " + "x" * 500, "Token a b"],
)
def test_an_unknown_token_is_a_401(live_gateway: str, authorization: str) -> None:
    answer = requests.get(
        f"{live_gateway}/api/orders/", headers={"Authorization": authorization}, timeout=30
    )
    assert_refused(answer, "invalid_token")


def test_no_token_is_a_401_that_says_how_to_send_one(live_gateway: str) -> None:
    answer = requests.get(f"{live_gateway}/api/orders/", timeout=30)
    assert_refused(answer, "not_authenticated")
    assert "Authorization: Token <key>" in answer.json()["detail"]


def test_a_disabled_shops_tokens_are_a_401_and_it_creates_nothing(
    a: Caller, b: Caller, shop_b: Shop
) -> None:
    order = created(b.create())
    shop_disable(shop=shop_b)

    assert_refused(b.get("/api/orders/"), "shop_disabled")
    assert_refused(b.get(f"/api/orders/{order['id']}/"), "shop_disabled")
    assert_refused(b.create({**BODY, "reference": "after"}), "shop_disabled")
    with pytest.raises(ShopInactive):
        order_create(
            new=NewOrder(reference="in-process", amount_int=1, currency="BTC"), shop=shop_b
        )
    assert not Order.objects.filter(reference__in=["after", "in-process"]).exists()
    assert SandboxOrder.objects.count() == 1
    assert created(a.create())  # shop A is not affected


def test_a_tokens_last_use_is_recorded(b: Caller) -> None:
    token = ApiToken.objects.get(key_sha256=api_token_digest(b.key))
    assert token.last_used_at is None

    b.ids()
    token.refresh_from_db()
    first_use = token.last_used_at
    b.ids()
    token.refresh_from_db()

    assert first_use is not None
    assert token.last_used_at == first_use  # at most one write a minute, not one per request


def test_a_shop_whose_secret_cannot_be_read_is_a_503_and_writes_nothing(
    live_gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOP_C_SECRET", raising=False)
    shop = shop_with_account("shop-c", secret_env="SHOP_C_SECRET")

    answer = caller(live_gateway, shop).create()

    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "shop_unconfigured"
    assert "SHOP_C_SECRET" not in answer.text
    assert not Order.objects.exists()


# --- return hosts -------------------------------------------------------------------------


def test_a_shops_return_hosts_are_its_own(a: Caller, b: Caller, settings: Any) -> None:
    settings.PAYMENTS_RETURN_HOSTS = ["default-shop.example"]  # the default shop's
    back = {"return_success": "https://a-shop.example/thanks"}

    assert created(a.create({**BODY, **back}))["reference"] == BODY["reference"]
    for url in ("https://a-shop.example/thanks", "https://default-shop.example/thanks"):
        refused = b.create({**BODY, "reference": "b", "return_success": url})
        assert refused.status_code == 400, refused.text
        assert "not allowed for return URLs" in refused.json()["fields"]["return_success"][0]
    own_host = f"{settings.PUBLIC_BASE_URL}/thanks"  # the service's own host: every shop's
    assert created(b.create({**BODY, "reference": "b", "return_failure": own_host}))
    assert SandboxOrder.objects.count() == 2


# --- the checkout pages and the schema -----------------------------------------------------


def test_each_shops_checkout_page_shows_its_order(live_gateway: str, a: Caller, b: Caller) -> None:
    for shop_caller in (a, b):
        order = created(shop_caller.create({**BODY, "description": "Two mugs"}))
        page = requests.get(order["checkout_url"], timeout=30)
        assert page.status_code == 200
        assert "Two mugs" in page.text and order["transaction"] in page.text


def test_the_schema_declares_token_and_bearer(live_gateway: str) -> None:
    schema = requests.get(f"{live_gateway}/api/schema/", params={"format": "json"}, timeout=30)
    document = schema.json()

    schemes = document["components"]["securitySchemes"]
    assert schemes["tokenAuth"]["type"] == "apiKey" and schemes["tokenAuth"]["in"] == "header"
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    for path, method in (("/api/orders/", "get"), ("/api/orders/", "post")):
        operation = document["paths"][path][method]
        assert operation["security"] == [{"tokenAuth": []}, {"bearerAuth": []}]
    assert "403" in document["paths"]["/api/orders/"]["post"]["responses"]
