"""The review admin: staff only, money read-only, notifications readable byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from payments.models import Notification, Payment
from payments.testing import ipn_body, post_ipn

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client) -> Client:
    user = get_user_model().objects.create_superuser("boss", password="a-long-password-1")
    client.force_login(user)
    return client


def test_anonymous_users_are_sent_to_the_login_page(client: Client, make_order: Any) -> None:
    order = make_order()
    response = client.get(f"/admin/payments/order/{order.pk}/change/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_order_page_shows_payments_and_notifications_inline(
    staff_client: Client, make_order: Any
) -> None:
    order = make_order(reference="shown-order")
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    post_ipn(Client(), body)

    page = staff_client.get(f"/admin/payments/order/{order.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "shown-order" in html
    assert "0.12345678 BTC" in html  # money shown in units with its currency
    assert str(Payment.objects.get().payment_id) in html  # the payment, inline
    assert "order paid" in html  # the notification's outcome, inline


def test_money_cannot_be_added_or_edited(staff_client: Client, make_order: Any) -> None:
    order = make_order()
    assert staff_client.get("/admin/payments/order/add/").status_code == 403
    staff_client.post(
        f"/admin/payments/order/{order.pk}/change/", {"amount_int": 1, "status": "paid"}
    )
    order.refresh_from_db()
    assert order.amount_int == 12_345_678 and order.status == "awaiting_payment"


def test_notification_log_shows_the_raw_body(staff_client: Client, make_order: Any) -> None:
    order = make_order()
    body = ipn_body(
        transaction=order.transaction, status="paid", amount_int=order.amount_int, data="<b>x</b>"
    )
    post_ipn(Client(), body)

    listing = staff_client.get("/admin/payments/notification/")
    assert listing.status_code == 200
    detail = staff_client.get(
        f"/admin/payments/notification/{Notification.objects.get().pk}/change/"
    )
    html = detail.content.decode()
    assert body.decode().replace("&", "&amp;") in html  # escaped, byte for byte
    assert "<b>x</b>" not in html
