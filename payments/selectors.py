"""Reads shared by views, the API, tasks and the admin."""

from __future__ import annotations

from urllib.parse import urlsplit
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet

from payments.models import Order


def order_list(*, status: str | None = None, reference: str | None = None) -> QuerySet[Order]:
    orders = Order.objects.prefetch_related("flags", "payments", "resolutions")
    if status:
        orders = orders.filter(status=status)
    if reference:
        orders = orders.filter(reference=reference)
    return orders


def order_get(*, order_id: UUID) -> Order:
    return Order.objects.prefetch_related("flags", "payments", "resolutions").get(pk=order_id)


def return_host_allowed(url: str) -> bool:
    """True when `url` is http(s) on the service's own host or a PAYMENTS_RETURN_HOSTS entry.

    Browsers read a backslash as a slash and drop tabs and newlines, so
    `http://evil.example\\@shop.example/` takes the payer to evil.example while
    urlsplit sees shop.example. A URL with a backslash, whitespace, a control
    character or user info ("name@") is refused outright: no shop needs one.
    """
    if any(char == "\\" or char.isspace() or not char.isprintable() for char in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[evil.example/": an unclosed IPv6 bracket
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    allowed = {urlsplit(settings.PUBLIC_BASE_URL).hostname, *settings.PAYMENTS_RETURN_HOSTS}
    return parts.hostname.lower() in {host.lower() for host in allowed if host}
