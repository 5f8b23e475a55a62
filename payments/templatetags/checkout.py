"""`{% load checkout %}{% checkout_button order %} ... {% checkout_script %}`.

The protocol's dynamic button: a `span.mtgox` holding a plain link to the
gateway's payment page, which works without JavaScript; the gateway's script,
placed once after all buttons, only enhances it.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from payments import money
from payments.conf import payments_settings
from payments.models import Order

register = template.Library()


def button_html(order: Order) -> SafeString:
    """The button markup for one order; empty until the gateway gave a transaction."""
    if order.transaction is None:
        return SafeString("")
    host = payments_settings.GATEWAY_PAYMENT_HOST
    return format_html(
        '<span class="mtgox" data-id="{tx}" data-amount="{amount}" data-currency="{currency}">'
        '<a href="{host}/{tx}"><img src="{host}/img/mtgox-checkout.png" alt="Pay with bitcoin">'
        "</a></span>",
        tx=order.transaction,
        amount=money.amount_text(order.amount_int, order.currency),
        currency=order.currency,
        host=host,
    )


def script_html() -> SafeString:
    return format_html(
        '<script src="{}/js/button.min.js"></script>', payments_settings.GATEWAY_PAYMENT_HOST
    )


@register.simple_tag
def checkout_button(order: Order) -> SafeString:
    return button_html(order)


@register.simple_tag(takes_context=True)
def checkout_script(context: template.Context) -> SafeString:
    """The gateway's script, once per page however often the tag is used."""
    if context.render_context.get("checkout_script_done"):
        return SafeString("")
    context.render_context["checkout_script_done"] = True
    return script_html()
