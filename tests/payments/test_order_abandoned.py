"""A creation whose request died (its process was killed) does not hold its key for ever.

The order of such a request stays `created`: nothing else moves it. While the request could
still be running, a retry with its key is a 409 (still in progress); once it cannot
(payments.services.orders.creation_bound_seconds), the retry fails the order as a timed-out
creation is failed, flagged gateway_uncertain, and makes a new attempt.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from payments.api.serializers import OrderCreateInput
from payments.models import IdempotencyKey, Order, OrderFlag
from payments.services.orders import creation_bound_seconds
from payments.shops import shop_default
from sandbox.models import SandboxOrder

pytestmark = pytest.mark.django_db(transaction=True)

BODY: dict[str, Any] = {"reference": "order-7", "amount_int": 25_000_000, "currency": "BTC"}


def _interrupted_creation(key: str, age_seconds: float) -> Order:
    """What a request killed after claiming its key leaves: a `created` order behind the key
    (of the default shop, whose token `api_client` holds)."""
    shop = shop_default()
    given = OrderCreateInput(data=BODY, context={"shop": shop})
    assert given.is_valid(), given.errors
    created = timezone.now() - timedelta(seconds=age_seconds)
    order = Order.objects.create(
        reference=BODY["reference"], amount_int=BODY["amount_int"], currency="BTC",
        shop=shop, created=created,
    )  # fmt: skip
    IdempotencyKey.objects.create(
        shop=shop, key=key, fingerprint=given.to_new_order().fingerprint(), order=order
    )
    return order


def _create(client: APIClient, key: str) -> Any:
    return client.post("/api/orders/", BODY, format="json", headers={"Idempotency-Key": key})


def test_a_retry_while_the_first_request_may_still_run_is_a_409(
    api_client: APIClient, live_gateway: str
) -> None:
    order = _interrupted_creation("k-young", creation_bound_seconds() - 5)

    response = _create(api_client, "k-young")

    assert response.status_code == 409
    assert "still in progress" in response.json()["detail"]
    order.refresh_from_db()
    assert order.status == "created"
    assert not SandboxOrder.objects.exists()


def test_a_retry_after_the_first_request_died_fails_it_and_makes_a_new_attempt(
    api_client: APIClient, live_gateway: str
) -> None:
    abandoned = _interrupted_creation("k-dead", creation_bound_seconds() + 1)

    response = _create(api_client, "k-dead")
    again = _create(api_client, "k-dead")

    assert response.status_code == 201, response.content
    assert response.json()["id"] != str(abandoned.pk)
    assert (again.status_code, again.json()["id"]) == (200, response.json()["id"])
    abandoned.refresh_from_db()
    assert abandoned.status == "failed"
    assert "ended without an answer" in abandoned.failure_reason
    assert list(abandoned.transitions.values_list("from_status", "to_status")) == [
        ("created", "failed")
    ]
    assert abandoned.flags.get().kind == OrderFlag.Kind.GATEWAY_UNCERTAIN
    assert SandboxOrder.objects.count() == 1
