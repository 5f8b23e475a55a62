"""Reads about webhook endpoints: which take an event, and which secrets sign for one.

The writes (create, rotate, enable, ping, the settings' endpoint) are in
payments.services.webhook_endpoints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Exists, OuterRef
from django.utils import timezone

from payments.exceptions import SecretUnreadable
from payments.models import WebhookEndpoint
from payments.secret_box import unseal
from payments.shop_event_signing import secret_is_standard


def enabled_endpoint_exists(*, shop: OuterRef) -> Exists:
    """Whether the shop (an outer query's column) has an enabled endpoint: an annotation
    that tells `Shop.endpoints_seen` in the same statement as the shop's read."""
    return Exists(WebhookEndpoint.objects.filter(shop_id=shop, enabled=True))


def webhook_endpoints_taking(
    *, shop_ids: Iterable[int], event_type: str
) -> dict[int, list[WebhookEndpoint]]:
    """The enabled endpoints of each shop whose filter takes `event_type`, by shop id.

    One query; the filter is applied here (a shop has a few endpoints), the
    same way on every database.
    """
    found: dict[int, list[WebhookEndpoint]] = defaultdict(list)
    rows = WebhookEndpoint.objects.filter(shop_id__in=set(shop_ids), enabled=True).order_by("pk")
    for endpoint in rows.only("pk", "shop_id", "event_types"):
        if endpoint.takes(event_type):
            found[endpoint.shop_id].append(endpoint)
    return found


def webhook_endpoint_secrets(
    *, endpoint: WebhookEndpoint, now: datetime | None = None
) -> list[str]:
    """The secrets that sign a delivery to `endpoint` now: its own, then the former one while
    a rotation runs. Empty when it has none; SecretUnreadable when one cannot be opened."""
    secrets = [unseal(endpoint.secret_sealed)] if endpoint.secret_sealed else []
    if endpoint.rotating(timezone.now() if now is None else now):
        secrets.append(unseal(endpoint.previous_secret_sealed))
    return [secret for secret in secrets if secret]


def webhook_endpoints_with_legacy_secrets() -> list[WebhookEndpoint]:
    """The endpoints (not the settings' one: payments.W401 covers it) whose secret is not a
    Standard Webhooks one: made before, it signs with its raw bytes until rotated.

    An endpoint whose secret cannot be opened is left out (its deliveries say so).
    """
    found = []
    for endpoint in (
        WebhookEndpoint.objects.filter(from_settings=False).select_related("shop").order_by("pk")
    ):
        try:
            secret = unseal(endpoint.secret_sealed) if endpoint.secret_sealed else ""
        except SecretUnreadable:
            continue
        if secret and not secret_is_standard(secret):
            found.append(endpoint)
    return found
