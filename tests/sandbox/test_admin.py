"""The sandbox's admin pages: orders with payments, IPN deliveries with their attempts."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from sandbox import services
from sandbox.models import IpnAttempt, IpnDelivery, SandboxAccount
from tests.sandbox.conftest import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(account: SandboxAccount) -> IpnDelivery:
    order = make_order(account, ipn="http://127.0.0.1:9/ipn")
    payment = services.payment_pay(order=order, method="account")
    found = IpnDelivery.objects.get(payment=payment)
    IpnAttempt.objects.create(delivery=found, http_status=500, reply="boom", ok=False)
    return found


def test_changelists_render(admin_client: Client, delivery: IpnDelivery) -> None:
    for model in ["sandboxaccount", "sandboxorder", "sandboxpayment", "ledgerentry", "ipndelivery"]:
        response = admin_client.get(f"/admin/sandbox/{model}/")
        assert response.status_code == 200, model


def test_a_delivery_shows_its_attempts(admin_client: Client, delivery: IpnDelivery) -> None:
    response = admin_client.get(f"/admin/sandbox/ipndelivery/{delivery.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "boom" in html and "500" in html


def test_an_order_shows_its_payments(admin_client: Client, delivery: IpnDelivery) -> None:
    response = admin_client.get(f"/admin/sandbox/sandboxorder/{delivery.order_id}/change/")

    assert response.status_code == 200
    assert delivery.payment is not None
    assert str(delivery.payment.payment_id) in response.content.decode()


def test_a_deliberately_wrong_delivery_without_a_payment_renders(
    admin_client: Client, account: SandboxAccount
) -> None:
    order = make_order(account, ipn="http://127.0.0.1:9/ipn")
    wrong = services.ipn_send_wrong(order=order, kind="zero-amount")

    listing = admin_client.get("/admin/sandbox/ipndelivery/")
    page = admin_client.get(f"/admin/sandbox/ipndelivery/{wrong.pk}/change/")

    assert listing.status_code == 200
    assert f"/admin/sandbox/ipndelivery/{wrong.pk}/change/" in listing.content.decode()
    assert page.status_code == 200
    assert "amount=0" in page.content.decode()


def test_send_now_requeues_an_unacknowledged_delivery(
    admin_client: Client,
    delivery: IpnDelivery,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    enqueued: list[int] = []
    monkeypatch.setattr(services, "_enqueue", enqueued.append)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/sandbox/ipndelivery/",
            {"action": "send_now", "_selected_action": [str(delivery.pk)]},
        )

    assert response.status_code == 302
    assert enqueued == [delivery.pk]
