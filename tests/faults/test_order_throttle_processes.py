"""The order-creation throttle counts across processes that share only the database.

Two service processes (gunicorn, as the Procfile runs it), each with a cache of its
own, as two machines without a shared `CACHE_URL` would be: a shop's creations add
up whichever process answers them, whichever of its tokens asks.
tests/payments/test_abuse.py covers the answer itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from payments.models import Order
from tests.factories import account_secret, api_token_key, shop_with_account
from tests.faults.conftest import ServiceServer
from tests.faults.fake_gateway import CREATED, FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway([CREATED]).start()
    yield fake
    fake.stop()


def create(server: ServiceServer, token: str, reference: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/orders/",
        json={"reference": reference, "amount": "0.5", "currency": "BTC"},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )


def test_two_processes_without_a_shared_cache_share_one_count_per_shop(
    service: Callable[..., ServiceServer], fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    env: dict[str, Any] = {
        "API_ORDER_CREATE_RATE": "2/hour",
        "GATEWAY_API_URL": fake_gateway.url,
    }
    other = shop_with_account("other-shop", secret_env="OTHER_SHOP_SECRET")
    env["OTHER_SHOP_SECRET"] = account_secret(other)
    one = service(**env, CACHE_URL=f"filecache://{tmp_path / 'cache-one'}")
    two = service(**env, CACHE_URL=f"filecache://{tmp_path / 'cache-two'}")
    shop, second_token = api_token_key(name="web"), api_token_key(name="worker")

    assert create(one, shop, "a").status_code == 201
    assert create(two, shop, "b").status_code == 201
    refused = [create(one, shop, "c"), create(two, second_token, "d")]

    assert [r.status_code for r in refused] == [429, 429]
    assert all(
        r.json()["error"] == "throttled" and int(r.headers["Retry-After"]) > 0 for r in refused
    )
    assert sorted(Order.objects.values_list("reference", flat=True)) == ["a", "b"]
    assert len(fake_gateway.requests) == 2
    assert create(two, api_token_key(shop=other), "theirs").status_code == 201
