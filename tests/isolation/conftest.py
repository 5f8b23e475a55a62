"""Two shops on one live service, each with its own sandbox account, token and staff.

Everything here goes over real HTTP: the shops' backends call the API with their
tokens, the payers pay on the sandbox's pages, the sandbox posts its signed
notifications to the service, and the staff log in through the admin's login form.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from payments.models import Order, Shop, ShopMembership
from payments.services.shops import api_token_create, shop_create
from sandbox.accounts import account_create
from sandbox.models import IpnDelivery, SandboxAccount
from sandbox.services import ipn_delivery_attempt

STAFF_PASSWORD = "staff-password-123"


def submit(session: requests.Session, page_url: str, action: str, fields: dict[str, str]) -> Any:
    """Submit a form as a browser without JavaScript would (the page's CSRF token included)."""
    page = session.get(page_url, timeout=30).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, page[:2000]
    return session.post(
        action,
        data={**fields, "csrfmiddlewaretoken": token.group(1)},
        allow_redirects=False,
        timeout=30,
    )


def csrf_token(session: requests.Session, page_url: str) -> str:
    page = session.get(page_url, timeout=30).text
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def staff_session(base_url: str, user: Any) -> requests.Session:
    session = requests.Session()
    login = f"{base_url}/admin/login/"
    fields = {"username": user.username, "password": STAFF_PASSWORD, "next": "/admin/"}
    assert submit(session, login, login, fields).status_code == 302
    return session


def deliver_ipns() -> list[str]:
    """Send the sandbox's queued notifications now (what its Celery task does), over HTTP."""
    return [
        ipn_delivery_attempt(delivery_id=delivery.pk).result
        for delivery in IpnDelivery.objects.filter(delivered_at__isnull=True).order_by("id")
    ]


@dataclass
class ShopSide:
    """One shop as the outside sees it: its backend's API session, its payer, its staff."""

    base_url: str
    shop: Shop
    account: SandboxAccount
    api: requests.Session
    staff: requests.Session
    orders: list[dict[str, Any]] = field(default_factory=list)

    def create(self, currency: str, amount: str, **fields: Any) -> dict[str, Any]:
        body = {"reference": f"{self.shop.name}-{uuid.uuid4().hex[:8]}", "amount": amount}
        response = self.api.post(
            f"{self.base_url}/api/orders/",
            json={**body, "currency": currency, **fields},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        order = dict(response.json())
        self.orders.append(order)
        return order

    def pay(self, order: dict[str, Any], choice: dict[str, str]) -> None:
        """A payer on the sandbox's page, then the sandbox's notifications, over HTTP."""
        pay_url = order["payment_url"]
        payer = requests.Session()
        assert submit(payer, pay_url, f"{pay_url}/pay", choice).status_code == 303
        assert set(deliver_ipns()) <= {"delivered"}

    @property
    def order_ids(self) -> set[str]:
        return {order["id"] for order in self.orders}

    @property
    def references(self) -> set[str]:
        return {order["reference"] for order in self.orders}


def _side(base_url: str, name: str, reviewers: Group) -> ShopSide:
    account = account_create(login=f"{name}-merchant")
    shop = shop_create(name=name, gateway_key=account.api_key, gateway_secret=account.secret)
    _, key = api_token_create(shop=shop, name=f"{name} backend")
    api = requests.Session()
    api.headers["Authorization"] = f"Token {key}"
    user = get_user_model().objects.create_user(
        f"{name}-staff", password=STAFF_PASSWORD, is_staff=True
    )
    user.groups.add(reviewers)
    ShopMembership.objects.create(shop=shop, user=user)
    return ShopSide(base_url, shop, account, api, staff_session(base_url, user))


@pytest.fixture
def two_shops(live_gateway: str, settings: Any) -> tuple[ShopSide, ShopSide]:
    """Shops alpha and beta, each with orders in several states made the way users make them."""
    call_command("create_review_roles", stdout=StringIO())
    reviewers = Group.objects.get(name="Payments reviewers")
    alpha, beta = (_side(live_gateway, name, reviewers) for name in ("alpha", "beta"))
    for side in (alpha, beta):
        side.pay(side.create("BTC", "0.5"), {"method": "account"})
        side.pay(side.create("USD", "10.00"), {"method": "bitcoin", "amount_choice": "less"})
        side.create("EUR", "3.00")
    for side in (alpha, beta):
        assert set(Order.objects.filter(pk__in=side.order_ids).values_list("shop", flat=True)) == {
            side.shop.pk
        }
    return alpha, beta


@pytest.fixture
def superuser_session(live_gateway: str) -> requests.Session:
    get_user_model().objects.create_superuser("root", password=STAFF_PASSWORD)
    return staff_session(live_gateway, get_user_model().objects.get(username="root"))
