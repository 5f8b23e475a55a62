"""Helpers for shops that integrate with this service: post notifications as the gateway does.

    from payments.testing import ipn_body, post_ipn

    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    response = post_ipn(client, body, shop=order.shop)  # Django test client
    assert response.content == b"[OK]"

A notification is signed with a shop's gateway account, as the gateway signs
it with the account that created the order: `shop=` (its key and secret),
or `api_key=` and `api_secret=` given outright; neither: the default shop's
(the settings' GATEWAY_API_KEY / GATEWAY_API_SECRET). `post_ipn_http` does
the same over real HTTP (a live server). Bodies are built in the gateway's
field order and signed byte for byte, like the protocol's signing vectors
(tests/data/signing-vectors.json).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests

from payments.choices import IpnStatus
from payments.conf import payments_settings
from payments.gateway.signing import sign
from payments.notification_message import DATE_FORMAT

if TYPE_CHECKING:  # imported when called: this module is imported before Django is set up
    from payments.models import Shop

IPN_PATH = "/payments/ipn/"
FORM = "application/x-www-form-urlencoded"


def ipn_body(
    *,
    transaction: uuid.UUID | str | None,
    status: str,
    payment_id: uuid.UUID | str | None = None,
    amount_int: int | None = None,
    currency: str = "BTC",
    method: str = "MTGOXBTC",
    date: datetime | None = None,
    amount_pending: int = 0,
    amount_valid: int = 0,
    amount_total: int | None = None,
    data: str | None = None,
) -> bytes:
    """An IPN body with the gateway's fields, in its order, for `status`."""
    if transaction is None:
        raise ValueError("the order has no gateway transaction yet")
    fields: list[tuple[str, Any]] = [
        ("id", transaction),
        ("payment_id", payment_id or uuid.uuid4()),
        ("status", status),
    ]
    if status == IpnStatus.PAID:
        if amount_int is None:
            raise ValueError("a paid notification needs amount_int")
        moment = (date or datetime.now(UTC)).astimezone(UTC)
        fields += [
            ("amount", amount_int),
            ("currency", currency),
            ("method", method),
            ("date", moment.strftime(DATE_FORMAT)),
        ]
    elif status == IpnStatus.PARTIAL:
        total = amount_pending + amount_valid if amount_total is None else amount_total
        fields += [
            ("amount_pending", amount_pending),
            ("amount_valid", amount_valid),
            ("amount_total", total),
        ]
    if data is not None:
        fields.append(("data", data))
    return urlencode([(name, str(value)) for name, value in fields]).encode()


def signed_headers(
    body: bytes,
    *,
    shop: Shop | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
) -> dict[str, str]:
    """Rest-Key and Rest-Sign for `body`: with `shop`'s gateway account, or the key and
    secret given (either overrides the shop's), else the default shop's (the settings')."""
    if shop is not None:
        from payments.shops import shop_gateway_credentials

        credentials = shop_gateway_credentials(shop=shop)
        api_key = api_key or credentials.api_key
        api_secret = api_secret or credentials.api_secret
    return {
        "Rest-Key": api_key or payments_settings.GATEWAY_API_KEY,
        "Rest-Sign": sign(body, api_secret or payments_settings.GATEWAY_API_SECRET),
        "Content-Type": FORM,
        "User-Agent": "payments.testing",
    }


def post_ipn(client: Any, body: bytes, *, path: str = IPN_PATH, **credentials: Any) -> Any:
    """POST a signed notification with a Django test client (`credentials`: signed_headers')."""
    headers = signed_headers(body, **credentials)
    return client.post(
        path,
        data=body,
        content_type=headers.pop("Content-Type"),
        headers=headers,
    )


def post_ipn_http(
    base_url: str, body: bytes, *, timeout: float = 10.0, **credentials: Any
) -> requests.Response:
    """POST a signed notification over HTTP to a running service (`base_url` without path)."""
    return requests.post(
        base_url.rstrip("/") + IPN_PATH,
        data=body,
        headers=signed_headers(body, **credentials),
        timeout=timeout,
    )
