"""The demo shop at /: buying something creates an order at the sandbox and goes to checkout."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from payments.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def test_buying_goes_to_the_checkout_page(live_server: Any, settings: Any) -> None:
    settings.PUBLIC_BASE_URL = live_server.url
    settings.GATEWAY_API_URL = f"{live_server.url}/sandbox/api/"
    settings.GATEWAY_PAYMENT_HOST = f"{live_server.url}/sandbox"
    client = Client(enforce_csrf_checks=False)

    assert b"Bitcoin mug" in client.get("/").content
    response = client.post("/buy/mug/")

    order = Order.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/checkout/{order.pk}/"
    assert order.status == "awaiting_payment"
    assert (order.amount_int, order.currency) == (1_250_000, "USD")
    assert b'class="mtgox"' in client.get(response["Location"]).content


def test_unknown_product_is_404(client: Client) -> None:
    assert client.post("/buy/nothing/").status_code == 404
    assert client.get("/buy/mug/").status_code == 405
