"""GET /metrics: Prometheus's text exposition of payments.metrics(_state), for operators only.

Answered to a request with `Authorization: Bearer <METRICS_TOKEN>` or from an
address in METRICS_ALLOWED_IPS (REMOTE_ADDR: the direct peer, never a
forwarded header a client could write); 403 otherwise, and 404 when neither
setting is set (off).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from functools import cache

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from payments.conf import payments_settings
from payments.metrics_state import DatabaseCollector

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed_ips(entries: tuple[str, ...]) -> list[Network]:
    """Addresses or networks (`10.0.0.5`, `10.0.0.0/8`, `::1`); ValueError names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an address or network") from None
    return networks


@cache
def _allowed_networks(entries: tuple[str, ...]) -> list[Network]:
    return parse_allowed_ips(entries)


def _bearer_ok(request: HttpRequest) -> bool:
    token = payments_settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


def _address_ok(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    networks = _allowed_networks(tuple(payments_settings.METRICS_ALLOWED_IPS))
    return any(address in network for network in networks)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not payments_settings.METRICS_TOKEN and not payments_settings.METRICS_ALLOWED_IPS:
        raise Http404
    if not (_bearer_ok(request) or _address_ok(request)):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry()
    # The counters of every process of this machine (the settings set the folder).
    MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
