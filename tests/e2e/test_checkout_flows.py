"""The whole flow in a real browser, against the service running as `make run` runs it.

Demo shop → Buy → checkout page with the gateway's button → the sandbox's
payment page → pay, pay unconfirmed bitcoins, or cancel → back on the
service's return page, which follows the order by itself (a script with
JavaScript, a meta refresh without) until the IPN, delivered by the real
worker, has been applied. Each flow runs with JavaScript and without.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from merchant.delivery import EARLY_TOLERANCE_SECONDS
from payments.models import Notification, Order
from sandbox.models import IpnAttempt, IpnDelivery
from tests.e2e.conftest import IPN_RETRY_SECONDS, Payer, Service

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"]),
]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# The IPN is applied within this (ms); retried ones need a few retry periods more.
SETTLE_MS = 30_000
# The sandbox's button for paying with a gateway account; it names the amount it pays.
ACCOUNT_BUTTON = re.compile(r"with my gateway account$")


def buy(payer: Payer, page: Page, product: str, amount: str) -> tuple[str, str]:
    """From the shop to the checkout page; returns (order id, gateway transaction)."""
    page.goto("/")
    expect(page.get_by_role("heading", name="Demo shop")).to_be_visible()
    page.locator("tr", has_text=product).get_by_role("button", name="Buy").click()
    page.wait_for_url(re.compile(rf"/checkout/({UUID})/$"))
    match = re.search(rf"/checkout/({UUID})/$", page.url)
    assert match, page.url
    order_id = match.group(1)
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    expect(page.locator("#order-status")).to_have_text("awaiting payment")
    button = page.locator("span.mtgox")
    expect(button.locator("a img")).to_have_attribute("alt", "Pay with bitcoin")
    if payer.javascript:
        # The gateway's button.min.js enhanced the plain link.
        expect(button).to_have_attribute("data-mtgox-ready", "1")
        expect(button).to_have_class(re.compile(r"\bmtgox-enhanced\b"))
        expect(button.locator(".mtgox-amount")).to_have_text(amount)
        expect(button.locator("a")).to_have_attribute("title", f"Pay {amount} with bitcoin")
    else:
        # No script ran: the plain link is all there is, and it is enough.
        expect(button).not_to_have_attribute("data-mtgox-ready", "1")
        expect(button.locator(".mtgox-amount")).to_have_count(0)
    transaction = button.get_attribute("data-id")
    assert transaction and re.fullmatch(UUID, transaction), transaction
    payer.screenshot(page, "checkout")
    return order_id, transaction


def to_gateway(page: Page, transaction: str, description: str) -> None:
    """Follow the checkout button to the sandbox's payment page."""
    page.locator("span.mtgox a").click()
    page.wait_for_url(re.compile(rf"/sandbox/pay/{transaction}$"))
    expect(page.get_by_role("heading", name=description)).to_be_visible()


class Watch:
    """Proves that a return page changed by itself: same document with JS, reloads without."""

    def __init__(self, payer: Payer, page: Page) -> None:
        self.payer = payer
        self.page = page
        self.loads = 0
        if payer.javascript:
            page.evaluate("window.e2eSameDocument = true")
        page.on("load", self._loaded)

    def _loaded(self, _: Any) -> None:
        self.loads += 1

    def assert_updated_itself(self) -> None:
        if self.payer.javascript:
            assert self.page.evaluate("window.e2eSameDocument === true"), "the page was reloaded"
            expect(self.page.locator("#status-note")).to_have_count(0)
        else:
            assert self.loads >= 1, "the page never refreshed itself"


def refresh_tag(page: Page) -> Locator:
    """Without JavaScript the <noscript> in <head> is parsed: its meta refresh is live."""
    return page.locator('head meta[http-equiv="refresh"]')


def expect_pending(payer: Payer, page: Page, label: str = "awaiting payment") -> None:
    status = page.locator("#order-status")
    expect(status).to_have_text(label)
    expect(status).to_have_attribute("data-final", "false")
    expect(page.locator("#status-note")).to_have_text(
        "This page updates by itself until the payment is settled."
    )
    if not payer.javascript:
        expect(refresh_tag(page)).to_have_attribute("content", "3")


def expect_final(payer: Payer, page: Page, label: str, timeout: int = SETTLE_MS) -> None:
    status = page.locator("#order-status")
    expect(status).to_have_text(label, timeout=timeout)
    expect(status).to_have_attribute("data-final", "true")
    expect(status).to_have_class(re.compile(rf"\bstatus-{label}\b"))
    if not payer.javascript:
        expect(refresh_tag(page)).to_have_count(0)  # settled: it stops refreshing


def test_pay(payer: Payer, service: Service) -> None:
    """Flow 1: pay in full with a gateway account; the success page turns paid by itself."""
    page = payer.new_page()
    order_id, transaction = buy(payer, page, "Bitcoin mug", "12.50000 USD")
    to_gateway(page, transaction, "Bitcoin mug from the demo shop")
    # Keep the IPN waiting at the door: the payer lands before it is applied.
    service.proxy.hold_ipns(transaction)
    # A gateway account pays exactly the price: no amount to choose.
    pay_button = page.get_by_role("button", name=ACCOUNT_BUTTON)
    expect(pay_button).to_have_text(re.compile(r"^Pay 1\.00000000\sBTC with my gateway account$"))
    pay_button.click()
    page.wait_for_url(f"**/checkout/{order_id}/success/")
    expect(page.get_by_role("heading", name="Thank you for your payment")).to_be_visible()
    expect_pending(payer, page)
    watch = Watch(payer, page)
    service.proxy.release_ipns(transaction)
    expect_final(payer, page, "paid")
    watch.assert_updated_itself()
    payer.finished()
    payer.screenshot(page, "final")

    [ipn] = service.proxy.ipns(transaction)
    assert (ipn.status, ipn.reply_status, ipn.reply, ipn.forwarded) == ("paid", 200, b"[OK]", True)
    order = Order.objects.get(pk=order_id)
    assert order.status == "paid"
    assert order.payments.count() == 1


def test_partial_then_confirmed(payer: Payer, service: Service) -> None:
    """Flow 2: unconfirmed bitcoins show "confirming"; 6 confirmations in the sandbox: paid."""
    page = payer.new_page()
    order_id, transaction = buy(payer, page, "Gox T-shirt", "0.05000000 BTC")
    to_gateway(page, transaction, "Gox T-shirt from the demo shop")
    page.get_by_role("radio", name=re.compile(r"The price: 0\.05000000")).check()
    page.get_by_role("button", name="Send bitcoins", exact=True).click()
    page.wait_for_url(f"**/checkout/{order_id}/success/")
    expect(page.get_by_role("heading", name="Thank you for your payment")).to_be_visible()
    expect_pending(payer, page, "confirming")  # the partial IPN, applied
    watch = Watch(payer, page)

    # The bitcoins confirm, at the gateway (a second tab on its payment page).
    gateway = payer.new_page()
    gateway.goto(f"{service.sandbox_url}/sandbox/pay/{transaction}")
    expect(gateway.get_by_text("and 0.05000000", exact=False)).to_be_visible()
    gateway.get_by_role("button", name="Simulate 6 confirmations").click()
    expect(gateway.get_by_role("status").first).to_have_text(
        "The payment reached 6 confirmations: it is paid and credited."
    )
    payer.screenshot(gateway, "gateway-confirmed")

    expect_final(payer, page, "paid")  # the first tab, by itself
    watch.assert_updated_itself()
    payer.finished()
    payer.screenshot(page, "final")

    ipns = service.proxy.ipns(transaction)
    assert [(i.status, i.reply) for i in ipns] == [("partial", b"[OK]"), ("paid", b"[OK]")]
    assert Order.objects.get(pk=order_id).status == "paid"


def test_cancel(payer: Payer, service: Service) -> None:
    """Flow 3: the payer cancels at the gateway; the failure page turns cancelled by itself."""
    page = payer.new_page()
    order_id, transaction = buy(payer, page, "Sticker pack", "3.20000 EUR")
    to_gateway(page, transaction, "Sticker pack from the demo shop")
    service.proxy.hold_ipns(transaction)
    page.get_by_role("button", name="Cancel and return to the shop").click()
    page.wait_for_url(f"**/checkout/{order_id}/failure/")
    expect(page.get_by_role("heading", name="The payment was not completed")).to_be_visible()
    expect_pending(payer, page)
    expect(page.get_by_role("link", name="Try paying again")).to_be_visible()
    watch = Watch(payer, page)
    service.proxy.release_ipns(transaction)
    expect_final(payer, page, "cancelled")
    watch.assert_updated_itself()
    payer.finished()
    page.reload()  # settled: nothing left to try
    expect(page.get_by_role("link", name="Try paying again")).to_have_count(0)
    payer.screenshot(page, "final")

    [ipn] = service.proxy.ipns(transaction)
    assert (ipn.status, ipn.reply) == ("cancelled", b"[OK]")
    assert Order.objects.get(pk=order_id).status == "cancelled"


def test_ipn_retried_until_acknowledged(payer: Payer, service: Service) -> None:
    """Flow 4: the IPN receiver fails twice; the sandbox retries on its schedule; paid."""
    page = payer.new_page()
    order_id, transaction = buy(payer, page, "Matcha tea", "1500.000 JPY")
    to_gateway(page, transaction, "Matcha tea from the demo shop")
    # Down, then up but answering the wrong thing: neither acknowledges.
    failures = [(503, b"Service Unavailable"), (200, b"OK")]
    service.proxy.fail_ipns(transaction, failures)
    page.get_by_role("button", name=ACCOUNT_BUTTON).click()
    page.wait_for_url(f"**/checkout/{order_id}/success/")
    expect_pending(payer, page)
    watch = Watch(payer, page)
    expect_final(payer, page, "paid", timeout=SETTLE_MS + 4 * IPN_RETRY_SECONDS * 1000)
    watch.assert_updated_itself()
    payer.finished()
    payer.screenshot(page, "final")

    ipns = service.proxy.ipns(transaction)
    assert [(i.reply_status, i.reply, i.forwarded) for i in ipns] == [
        (503, b"Service Unavailable", False),
        (200, b"OK", False),
        (200, b"[OK]", True),
    ]
    # What the sandbox recorded: two failed attempts, one acknowledged, on its schedule.
    delivery = IpnDelivery.objects.get(order__transaction=transaction)
    assert delivery.attempts == 3
    assert delivery.delivered_at is not None
    attempts = list(IpnAttempt.objects.filter(delivery=delivery).order_by("time", "id"))
    assert [(a.http_status, a.reply, a.ok) for a in attempts] == [
        (503, "Service Unavailable", False),
        (200, "OK", False),
        (200, "[OK]", True),
    ]
    failed = [a for a in attempts if not a.ok]
    assert len(failed) == 2
    least_gap = timedelta(seconds=IPN_RETRY_SECONDS - EARLY_TOLERANCE_SECONDS)
    for before, after in itertools.pairwise(attempts):
        assert after.time - before.time >= least_gap, (before.time, after.time)
    # The service saw only the acknowledged one; the order is paid once.
    order = Order.objects.get(pk=order_id)
    assert order.status == "paid"
    assert Notification.objects.filter(order=order).count() == 1
