"""A reviewer's walk through the admin in headless Chromium.

Log in, open the dashboard, filter flagged orders, open one, mark its flag
reviewed with a comment; then check what the database kept.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from payments.models import FlagReview, Order, OrderFlag
from payments.services import order_flag
from payments.states import OrderStatus
from payments.testing import ipn_body, post_ipn
from tests.browser.conftest import screenshot
from tests.factories import staff_user

PASSWORD = "a-long-password-1"


def make_order(**fields: Any) -> Order:
    """An order the gateway accepted, awaiting payment unless told otherwise."""
    values: dict[str, Any] = {
        "amount_int": 12_345_678,
        "currency": "BTC",
        "transaction": uuid.uuid4(),
        "payment_url": "http://127.0.0.1/sandbox/pay/x",
        "status": OrderStatus.AWAITING_PAYMENT,
        **fields,
    }
    return Order.objects.create(**values)


@pytest.fixture
def shop(transactional_db: None) -> dict[str, Any]:
    """Orders in several states, payments over the last days, one flagged order."""
    call_command("create_review_roles", stdout=StringIO())
    reviewer = staff_user("rita", groups=["Payments reviewers"])  # of the default shop
    now = timezone.now()
    ipn = Client()
    for i in range(12):
        amount = 1_250_000 + i * 100_000
        order = make_order(reference=f"shop-{i:02d}", currency="USD", amount_int=amount)
        if i % 3 != 2:
            paid_on = now - timedelta(days=i % 9)
            post_ipn(
                ipn,
                ipn_body(
                    transaction=order.transaction,
                    status="paid",
                    amount_int=amount,
                    currency="USD",
                    date=paid_on,
                ),
            )
    for i in range(4):
        order = make_order(reference=f"btc-{i}", amount_int=5_000_000)
        post_ipn(
            ipn,
            ipn_body(
                transaction=order.transaction,
                status="paid",
                amount_int=5_000_000,
                date=now - timedelta(days=2 * i),
            ),
        )
    flagged = make_order(reference="flagged-order-1")
    flag = order_flag(
        order_id=flagged.pk, kind=OrderFlag.Kind.OVERPAID, detail="paid 0.01 BTC too much"
    )
    make_order(reference="quiet-order-1")
    return {"reviewer": reviewer, "flagged": flagged, "flag": flag}


def test_a_reviewer_marks_a_flagged_order_reviewed(page: Any, shop: dict[str, Any]) -> None:
    # Log in.
    page.goto("/admin/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#payments-dashboard-module")

    # Open the dashboard from the admin index.
    page.click("text=Payments dashboard")
    page.wait_for_selector("#orders-by-status")
    assert page.inner_text("h1") == "Payments dashboard"
    assert "flagged-order-1" in page.inner_text("#flag-queue")
    assert page.inner_text("#flagged-orders") == "1"
    charts = page.locator("#revenue figure")
    assert charts.count() == 2  # BTC and USD
    assert page.locator("#revenue figure svg rect.bar").count() == 60  # 30 days each
    assert re.search(r"paid\s+12", page.inner_text("#orders-by-status"))
    screenshot(page, "dashboard")

    # Filter flagged orders.
    page.click("text=flagged orders")
    page.wait_for_selector("#result_list")
    assert "flagged=yes" in page.url
    listing = page.inner_text("#result_list")
    assert "flagged-order-1" in listing and "quiet-order-1" not in listing
    page.goto("/admin/payments/order/")
    page.locator("#changelist-filter").get_by_role("link", name="Yes: needs review").click()
    page.wait_for_url(re.compile(r"flagged=yes"))
    assert "quiet-order-1" not in page.inner_text("#result_list")
    screenshot(page, "flagged-orders")

    # Open it and mark its flag reviewed.
    page.click("#result_list >> text=flagged-order-1")
    page.wait_for_selector("#review-flags-link")
    assert "paid 0.01 BTC too much" in page.content()
    page.click("#review-flags-link")
    page.wait_for_selector("#review-flags-form")
    assert page.is_checked(f"#flag-{shop['flag'].pk}")
    page.fill("#id_comment", "Refunded the 0.01 BTC to the payer.")
    screenshot(page, "review-form")
    page.click("#mark-reviewed")
    page.wait_for_selector(".messagelist .success")
    assert "1 flag(s) marked reviewed" in page.inner_text(".messagelist")
    assert "Refunded the 0.01 BTC to the payer." in page.content()  # the flag, inline
    assert page.locator("#review-flags-link").count() == 0
    screenshot(page, "order-reviewed")

    # The flagged filter no longer lists it.
    page.goto("/admin/payments/order/?flagged=yes")
    assert "flagged-order-1" not in page.inner_text("#content")

    flag = OrderFlag.objects.get(pk=shop["flag"].pk)
    assert flag.reviewed_by == shop["reviewer"] and flag.reviewed_at is not None
    assert flag.review_comment == "Refunded the 0.01 BTC to the payer."
    review = FlagReview.objects.get()
    assert (review.reviewer_name, review.order_id) == ("rita", shop["flagged"].pk)
    assert Order.objects.get(pk=shop["flagged"].pk).open_flags == 0
