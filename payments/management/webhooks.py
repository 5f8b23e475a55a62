"""What the shop_webhook_* commands share: finding the endpoint they are given, describing it.

The shop they are given is found as by every shop command (payments.management.shops).
"""

from __future__ import annotations

from django.core.management.base import CommandError

from payments.models import WebhookEndpoint


def endpoint_numbered(endpoint_id: str) -> WebhookEndpoint:
    found = None
    if endpoint_id.isdigit():
        found = WebhookEndpoint.objects.select_related("shop").filter(pk=int(endpoint_id)).first()
    if found is None:
        raise CommandError(
            f"no webhook endpoint {endpoint_id!r} (manage.py shop_webhook_list SHOP lists them)"
        )
    return found


def describe(endpoint: WebhookEndpoint) -> str:
    """One line: id, on/off, URL, what it takes, whether a rotation runs."""
    state = "on " if endpoint.enabled else "off"
    takes = ",".join(endpoint.event_types) or "every event"
    notes = []
    if endpoint.from_settings:
        notes.append("from SHOP_WEBHOOK_URL")
    if endpoint.rotating():
        notes.append(
            f"former secret signs until {endpoint.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC"
        )
    if endpoint.description:
        notes.append(endpoint.description)
    suffix = f"  ({'; '.join(notes)})" if notes else ""
    return f"{endpoint.pk:>5}  {state}  {endpoint.url}  [{takes}]{suffix}"
