"""Rows the tests start from, built the one way the whole suite agrees on."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from payments import money
from payments.models import Order, Shop, ShopMembership
from payments.services.shops import shop_create
from payments.shops import shop_default
from payments.states import OrderStatus
from sandbox import currencies

PASSWORD = "a-long-password-1"


def accepted_order(*, shop: Shop | None = None, **fields: Any) -> Order:
    """An order the gateway already accepted (awaiting payment unless told otherwise),
    of `shop` (the default shop unless told otherwise)."""
    values: dict[str, Any] = {
        "reference": f"ref-{uuid.uuid4().hex[:8]}",
        "amount_int": 12_345_678,
        "currency": "BTC",
        "transaction": uuid.uuid4(),
        "payment_url": "http://127.0.0.1/sandbox/pay/x",
        "status": OrderStatus.AWAITING_PAYMENT,
    }
    if shop is not None:
        values["shop"] = shop
    values.update(fields)
    if values["currency"] != money.BTC and "quote_rate_int" not in values:
        # Quoted at the sandbox's rate, as order creation against the sandbox would.
        values["quote_rate_int"] = currencies.rate_int(values["currency"])
    if values.get("quote_rate_int") is not None:
        values.setdefault(
            "quote_btc_int",
            money.btc_for(values["amount_int"], values["currency"], values["quote_rate_int"]),
        )
        values.setdefault("quoted_at", timezone.now())
    return Order.objects.create(**values)


def shop_with_account(name: str) -> Shop:
    """A shop besides the default one, with a gateway key and a sealed secret of its own."""
    return shop_create(
        name=name,
        gateway_key=uuid.uuid4(),
        gateway_secret=base64.b64encode(secrets.token_bytes(64)).decode(),
    )


def staff_user(
    username: str, *, groups: Iterable[str] = (), shops: Iterable[Shop] | None = None
) -> Any:
    """A staff user (not a superuser) in `groups`, working for `shops` (the default shop
    unless told otherwise; () for none)."""
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(*(Group.objects.get(name=name) for name in groups))
    for shop in [shop_default()] if shops is None else shops:
        ShopMembership.objects.create(shop=shop, user=user)
    return user
