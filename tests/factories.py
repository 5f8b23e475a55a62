"""Rows the tests start from, built the one way the whole suite agrees on."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from payments import money
from payments.models import Order, Shop, ShopMembership
from payments.services.shops import api_token_create, shop_create
from payments.shops import shop_default
from payments.states import OrderStatus
from sandbox import currencies
from sandbox.accounts import account_create
from sandbox.models import SandboxAccount

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


def api_token_key(*, shop: Shop | None = None, name: str = "test", read_only: bool = False) -> str:
    """A new API token of `shop` (the default shop when None): the key a client sends."""
    _, key = api_token_create(shop=shop or shop_default(), name=name, read_only=read_only)
    return key


def shop_with_account(name: str, *, secret_env: str = "", **fields: Any) -> Shop:
    """A shop with a sandbox merchant account of its own (its own key, secret and nonces).

    Its secret is sealed with this process's secret key, or, with `secret_env`, named
    by that environment variable (for processes of the service started by the test,
    which have secret keys of their own): give them `account_secret(shop)` under it.
    """
    account = account_create(login=name)
    if secret_env:
        fields["gateway_secret_env"] = secret_env
    else:
        fields["gateway_secret"] = account.secret
    return shop_create(name=name, gateway_key=account.api_key, **fields)


def account_secret(shop: Shop) -> str:
    """The gateway secret of a shop made by `shop_with_account`."""
    assert shop.gateway_key is not None, "the default shop's secret is the environment's"
    return SandboxAccount.objects.get(api_key=shop.gateway_key).secret


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
