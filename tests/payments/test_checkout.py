"""The checkout button and the payer's pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.template import Context, Template
from django.test import Client

from payments.templatetags.checkout import button_html

pytestmark = pytest.mark.django_db

XSS = '"><script>alert(1)</script>'


def test_button_matches_the_protocol_markup(make_order: Any, settings: Any) -> None:
    settings.GATEWAY_PAYMENT_HOST = "https://payment.example"
    order = make_order(amount_int=1_250_000, currency="USD")
    tx = order.transaction

    assert str(button_html(order)) == (
        f'<span class="mtgox" data-id="{tx}" data-amount="12.50000" data-currency="USD">'
        f'<a href="https://payment.example/{tx}">'
        '<img src="https://payment.example/img/mtgox-checkout.png" alt="Pay with bitcoin">'
        "</a></span>"
    )


def test_script_tag_once_per_page(make_order: Any, settings: Any) -> None:
    settings.GATEWAY_PAYMENT_HOST = "https://payment.example"
    html = Template(
        "{% load checkout %}{% checkout_button a %}{% checkout_button b %}"
        "{% checkout_script %}{% checkout_script %}"
    ).render(Context({"a": make_order(), "b": make_order()}))

    assert html.count('class="mtgox"') == 2
    assert html.count('<script src="https://payment.example/js/button.min.js"></script>') == 1


def test_no_button_before_the_gateway_gave_a_transaction(make_order: Any) -> None:
    assert str(button_html(make_order(transaction=None, status="failed"))) == ""


def test_hostile_description_and_data_come_out_inert(client: Client, make_order: Any) -> None:
    order = make_order(description=XSS, data=XSS, reference=XSS)
    for path in (f"/checkout/{order.pk}/", f"/checkout/{order.pk}/success/"):
        html = client.get(path).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_checkout_page_shows_the_button_and_works_without_javascript(
    client: Client, make_order: Any
) -> None:
    order = make_order(description="Two mugs")
    html = client.get(f"/checkout/{order.pk}/").content.decode()

    assert "Two mugs" in html
    link = re.search(r'<span class="mtgox"[^>]*><a href="([^"]+)"', html)
    assert link and link.group(1).endswith(str(order.transaction))
    assert '<noscript><meta http-equiv="refresh"' in html  # live state without JavaScript


def test_return_pages_show_live_state_and_stop_refreshing_when_final(
    client: Client, make_order: Any
) -> None:
    order = make_order(return_success="https://shop.example/thanks")
    waiting = client.get(f"/checkout/{order.pk}/success/").content.decode()
    assert "awaiting payment" in waiting
    assert 'http-equiv="refresh"' in waiting
    assert 'href="https://shop.example/thanks"' in waiting

    order.status = "paid"
    order.save()
    done = client.get(f"/checkout/{order.pk}/success/").content.decode()
    assert 'data-final="true"' in done and ">paid<" in done
    assert 'http-equiv="refresh"' not in done


def test_failure_page_links_back_to_the_shop(client: Client, make_order: Any) -> None:
    order = make_order(status="cancelled", return_failure="https://shop.example/cart")
    html = client.get(f"/checkout/{order.pk}/failure/").content.decode()
    assert "cancelled" in html
    assert 'href="https://shop.example/cart"' in html


def test_status_endpoint(client: Client, make_order: Any) -> None:
    order = make_order(status="confirming")
    body = client.get(f"/checkout/{order.pk}/status/").json()
    assert body == {"status": "confirming", "label": "confirming", "final": False}


def test_unknown_order_is_404(client: Client) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/checkout/{missing}/").status_code == 404
    assert client.get(f"/checkout/{missing}/status/").status_code == 404
    assert client.get("/checkout/not-a-uuid/").status_code == 404
