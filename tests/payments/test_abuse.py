"""Abuse: the admin login locks out per username and per address; order creation is throttled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from payments.checks import check_abuse_limits
from payments.models import Order
from tests.factories import api_token_key, shop_with_account
from tests.faults.fake_gateway import CREATED, FakeGateway

pytestmark = pytest.mark.django_db

LIMIT = 3
PASSWORD = "right-password-123"
ATTACKER, STAFF_DESK = "203.0.113.7", "198.51.100.20"


@pytest.fixture
def boss(settings: Any) -> Any:
    settings.AXES_FAILURE_LIMIT = LIMIT
    return get_user_model().objects.create_superuser("boss", password=PASSWORD)


def log_in(address: str, username: str = "boss", password: str = PASSWORD) -> Any:
    """One POST to the admin's login form from `address`, as a browser sends it."""
    return Client(REMOTE_ADDR=address).post(
        "/admin/login/", {"username": username, "password": password, "next": "/admin/"}
    )


def assert_logged_in(response: Any) -> None:
    assert response.status_code == 302, response.status_code
    assert response["Location"] == "/admin/"


def assert_locked_out(response: Any) -> None:
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in locked" in page
    assert f"Too many failed sign-ins ({LIMIT})" in page
    assert "Try again in 15 minutes" in page
    assert "_auth_user_id" not in response.client.session


def test_failures_below_the_limit_show_the_login_form_again(boss: Any) -> None:
    for _ in range(LIMIT - 1):
        response = log_in(ATTACKER, password="guess")
        assert response.status_code == 200
        assert "Please enter the correct username and password" in response.content.decode()


def test_the_limit_th_failure_locks_the_username_from_every_address(boss: Any) -> None:
    responses = [log_in(ATTACKER, password=f"guess-{n}") for n in range(LIMIT)]

    assert [r.status_code for r in responses] == [200] * (LIMIT - 1) + [429]
    assert_locked_out(log_in(STAFF_DESK))  # the right password, from another address


def test_failures_from_one_address_lock_it_for_every_username(boss: Any) -> None:
    for n in range(LIMIT):
        log_in(ATTACKER, username=f"nobody-{n}", password="guess")

    assert_locked_out(log_in(ATTACKER))  # boss never failed, but the address did
    assert_logged_in(log_in(STAFF_DESK))


def test_a_success_resets_the_failure_count(boss: Any) -> None:
    for _ in range(LIMIT - 1):
        log_in(STAFF_DESK, password="typo")
    assert_logged_in(log_in(STAFF_DESK))
    assert not AccessAttempt.objects.exists()

    for _ in range(LIMIT - 1):  # as many again: not locked, the count started over
        log_in(STAFF_DESK, password="typo")
    assert_logged_in(log_in(STAFF_DESK))


def test_the_lockout_ends_after_the_cool_off(boss: Any, settings: Any) -> None:
    for _ in range(LIMIT):
        log_in(ATTACKER, password="guess")
    assert_locked_out(log_in(STAFF_DESK))

    # Every failure, the refused right password too, restarts the cool-off: age them all
    # past it, as the clock would.
    over = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=over)

    assert_logged_in(log_in(STAFF_DESK))


def test_a_lockout_by_the_pair_leaves_the_username_free_elsewhere(boss: Any, settings: Any) -> None:
    settings.AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # username+ip_address
    for _ in range(LIMIT):
        log_in(ATTACKER, password="guess")

    assert_locked_out(log_in(ATTACKER))
    assert_logged_in(log_in(STAFF_DESK))


def test_force_login_still_works_and_login_needs_a_request(boss: Any) -> None:
    client = Client()
    client.force_login(boss)
    assert client.get("/admin/").status_code == 200
    # Axes counts failures per request: Client.login() gives none, and is refused.
    with pytest.raises(ValueError, match="requires a request"):
        Client().login(username="boss", password=PASSWORD)


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("AXES_FAILURE_LIMIT", 0, "payments.E201"),
        ("AXES_COOLOFF_TIME", timedelta(0), "payments.E202"),
        ("AXES_LOCKOUT_PARAMETERS", ["username", "address"], "payments.E203"),
        ("API_ORDER_CREATE_RATE", "sixty", "payments.E204"),
        ("API_ORDER_CREATE_RATE", "60/fortnight", "payments.E204"),
        ("API_ORDER_CREATE_RATE", "0/min", "payments.E204"),
    ],
)
def test_unusable_limits_are_refused_at_start(
    settings: Any, name: str, value: Any, check_id: str
) -> None:
    assert check_abuse_limits() == []
    setattr(settings, name, value)
    assert [error.id for error in check_abuse_limits()] == [check_id]


# --- POST /api/orders/ per shop --------------------------------------------------------


@pytest.fixture
def gateway(settings: Any) -> Iterator[FakeGateway]:
    """A gateway that accepts every order."""
    fake = FakeGateway([CREATED]).start()
    settings.GATEWAY_API_URL = fake.url
    yield fake
    fake.stop()


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def create(client: APIClient, reference: str) -> Any:
    body = {"reference": reference, "amount": "0.5", "currency": "BTC"}
    return client.post("/api/orders/", body, format="json")


def test_one_creation_over_the_rate_is_429_and_reaches_nothing(
    gateway: FakeGateway, settings: Any
) -> None:
    settings.API_ORDER_CREATE_RATE = f"{LIMIT}/min"
    shop = token_client(api_token_key(name="web"))
    assert [create(shop, f"r{n}").status_code for n in range(LIMIT)] == [201] * LIMIT

    throttled = create(shop, "one-too-many")

    assert throttled.status_code == 429
    assert throttled.json() == {
        "error": "throttled",
        "detail": f"Too many orders created for this shop: "
        f"try again in {throttled['Retry-After']} s.",
    }
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert not Order.objects.filter(reference="one-too-many").exists()
    assert Order.objects.count() == LIMIT
    assert len(gateway.requests) == LIMIT  # no order/create for the refused one
    assert shop.get("/api/orders/").status_code == 200  # reads are not throttled
    # The count is the shop's: another of its tokens is held too; another shop is not.
    assert create(token_client(api_token_key(name="second")), "same-shop").status_code == 429
    other_shop = shop_with_account("other-shop")
    assert create(token_client(api_token_key(shop=other_shop)), "theirs").status_code == 201


def test_the_window_counts_the_shops_orders_by_their_creation_time(
    gateway: FakeGateway, settings: Any
) -> None:
    settings.API_ORDER_CREATE_RATE = f"{LIMIT}/min"
    shop = token_client(api_token_key())
    assert [create(shop, f"r{n}").status_code for n in range(LIMIT)] == [201] * LIMIT
    now = timezone.now()
    # The oldest of the three made 50 s ago: one slot frees in 10 s.
    Order.objects.filter(reference="r0").update(created=now - timedelta(seconds=50))
    Order.objects.filter(reference__in=["r1", "r2"]).update(created=now - timedelta(seconds=5))

    refused = create(shop, "early")
    assert refused.status_code == 429
    assert 9 <= int(refused["Retry-After"]) <= 10

    # Out of the window: the count is one short of the rate again, for one more order.
    Order.objects.filter(reference="r0").update(created=now - timedelta(seconds=61))
    assert create(shop, "on-time").status_code == 201
    assert create(shop, "over-again").status_code == 429


def test_what_creates_no_order_is_not_counted(gateway: FakeGateway, settings: Any) -> None:
    settings.API_ORDER_CREATE_RATE = f"{LIMIT}/min"
    shop = token_client(api_token_key())
    invalid = {"reference": "bad", "amount": "-1", "currency": "BTC"}
    assert {shop.post("/api/orders/", invalid, format="json").status_code for _ in range(9)} == {
        400
    }
    assert [create(shop, f"r{n}").status_code for n in range(LIMIT)] == [201] * LIMIT


def test_no_rate_is_no_limit(gateway: FakeGateway, settings: Any) -> None:
    settings.API_ORDER_CREATE_RATE = None  # API_ORDER_CREATE_RATE empty or 0
    shop = token_client(api_token_key())
    assert {create(shop, f"r{n}").status_code for n in range(LIMIT * 2)} == {201}


def test_the_schema_declares_the_429(client: Client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    post = schema["paths"]["/api/orders/"]["post"]
    throttled = post["responses"]["429"]
    assert throttled["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOutput"
    }
    assert throttled["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert "429" not in schema["paths"]["/api/orders/"]["get"]["responses"]
