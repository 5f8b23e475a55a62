"""The order-creation throttle counts across processes that share the cache.

Two service processes (gunicorn, as the Procfile runs it) with one file cache, as
`CACHE_URL` gives every process of a machine: a token's creations add up whichever
process answers them. tests/payments/test_abuse.py covers the answer itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from payments.models import Order
from tests.faults.conftest import ServiceServer
from tests.faults.fake_gateway import CREATED, FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway([CREATED]).start()
    yield fake
    fake.stop()


def token_for(username: str) -> str:
    user = get_user_model().objects.create_user(username, password="unused-password-123")
    return Token.objects.create(user=user).key


def create(server: ServiceServer, token: str, reference: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/orders/",
        json={"reference": reference, "amount": "0.5", "currency": "BTC"},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )


def test_two_processes_share_one_count_per_token(
    service: Callable[..., ServiceServer], fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    env: dict[str, Any] = {
        "API_ORDER_CREATE_RATE": "2/hour",
        "CACHE_URL": f"filecache://{tmp_path / 'shared-cache'}",
        "GATEWAY_API_URL": fake_gateway.url,
    }
    one, two = service(**env), service(**env)
    shop = token_for("shop")

    assert create(one, shop, "a").status_code == 201
    assert create(two, shop, "b").status_code == 201
    refused = [create(one, shop, "c"), create(two, shop, "d")]

    assert [r.status_code for r in refused] == [429, 429]
    assert all(
        r.json()["error"] == "throttled" and int(r.headers["Retry-After"]) > 0 for r in refused
    )
    assert sorted(Order.objects.values_list("reference", flat=True)) == ["a", "b"]
    assert len(fake_gateway.requests) == 2
    assert create(two, token_for("other-shop"), "theirs").status_code == 201
