"""Reads shared by views, the API, tasks and the admin."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

from django.db.models import QuerySet

from payments import raw_sql
from payments.conf import payments_settings
from payments.models import Order, Shop


def order_list(
    *, shop: Shop, status: str | None = None, reference: str | None = None
) -> QuerySet[Order]:
    """The shop's orders (never another shop's), with what their output shows."""
    orders = Order.objects.filter(shop=shop).prefetch_related("flags", "payments", "resolutions")
    if status:
        orders = orders.filter(status=status)
    if reference:
        orders = orders.filter(reference=reference)
    return orders


def order_get(*, shop: Shop, order_id: UUID) -> Order:
    """The shop's order; Order.DoesNotExist for another shop's, as for a missing one."""
    return Order.objects.prefetch_related("flags", "payments", "resolutions").get(
        pk=order_id, shop=shop
    )


def order_created_nth_newest(*, shop_id: int, n: int, since: datetime) -> datetime | None:
    """When the shop's `n`-th newest order created since `since` was created; None when it
    has fewer.

    The order throttle asks it before every creation: SQL (a queryset's compilation costs
    more than the statement), a backward scan of the (shop, created) index that reads at
    most `n` entries.
    """
    created = raw_sql.column(Order, "created")
    sql = (
        f"SELECT {created} FROM {raw_sql.table(Order)} "  # noqa: S608
        f"WHERE {raw_sql.column(Order, 'shop')} = %s AND {created} >= %s "
        f"ORDER BY {created} DESC LIMIT 1 OFFSET %s"
    )
    params = [shop_id, raw_sql.prep(Order, "created", since), n - 1]
    found: datetime | None = raw_sql.value_read(Order, "created", sql, params)
    return found


DEFAULT_PORTS = {"http": 80, "https": 443}
# A host name (or an IPv4 address) or, as urlsplit gives it without brackets, an IPv6 one.
_HOSTNAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*|[0-9a-f:.]+")


@dataclass(frozen=True)
class ReturnHost:
    """A PAYMENTS_RETURN_HOSTS entry: a host (any http(s) URL on it) or an origin (only it)."""

    host: str
    scheme: str | None = None  # None: a bare host, any scheme and port
    port: int | None = None

    def allows(self, host: str, scheme: str, port: int) -> bool:
        if host != self.host:
            return False
        return self.scheme is None or (scheme, port) == (self.scheme, self.port)


def parse_return_host(entry: str) -> ReturnHost:
    """`shop.example` or `https://shop.example[:8443]`; ValueError says what else it is."""
    text = entry.strip()
    origin = "://" in text
    try:
        parts = urlsplit(text if origin else f"//{text}")
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"its host or port cannot be read ({exc})") from exc
    if not parts.hostname or not _HOSTNAME.fullmatch(parts.hostname):
        raise ValueError("it does not name a host")
    if "@" in parts.netloc:
        raise ValueError("it has user info")
    if parts.path not in (("", "/") if origin else ("",)) or parts.query or parts.fragment:
        raise ValueError("it has a path, a query or a fragment")
    if not origin:
        if port is not None:
            raise ValueError("a port needs its scheme too")
        return ReturnHost(parts.hostname)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError("its scheme is not http or https")
    return ReturnHost(parts.hostname, parts.scheme, _port(parts.scheme, port))


def _port(scheme: str, port: int | None) -> int:
    return DEFAULT_PORTS[scheme] if port is None else port


def return_hosts(*, shop: Shop) -> list[ReturnHost]:
    """The shop's usable return hosts: its own entries, and PAYMENTS_RETURN_HOSTS for the
    default shop. A bad entry allows nothing (payments.E008 names a bad setting; a shop's
    entries are checked when it is made)."""
    entries = [
        *shop.return_hosts,
        *(payments_settings.PAYMENTS_RETURN_HOSTS if shop.is_default else ()),
    ]
    usable = []
    for entry in entries:
        with contextlib.suppress(ValueError):
            usable.append(parse_return_host(entry))
    return usable


def return_host_allowed(url: str, *, shop: Shop) -> bool:
    """True when `url` is http(s) on the service's own host or on one of the shop's return
    hosts (`return_hosts`: its entries, and PAYMENTS_RETURN_HOSTS for the default shop).

    Browsers read a backslash as a slash and drop tabs and newlines, so
    `http://evil.example\\@shop.example/` takes the payer to evil.example while
    urlsplit sees shop.example. A URL with a backslash, whitespace, a control
    character or user info ("name@") is refused outright: no shop needs one.
    """
    # Whitespace other than the space is never printable: one scan of the string each.
    if "\\" in url or " " in url or not url.isprintable():
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for one that is not a port
    except ValueError:  # e.g. "http://[evil.example/": an unclosed IPv6 bracket
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return False
    if parts.hostname == urlsplit(payments_settings.PUBLIC_BASE_URL).hostname:
        return True
    port = _port(parts.scheme, port)
    allowed = return_hosts(shop=shop)
    return any(entry.allows(parts.hostname, parts.scheme, port) for entry in allowed)
