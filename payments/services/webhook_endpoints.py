"""A shop's webhook endpoints: made, rotated, switched on and off; the settings' endpoint.

A secret is made here (a Standard Webhooks "whsec_<base64>" one,
payments.shop_event_signing.new_secret), sealed (payments.secret_box) and
returned once: the admin and the commands show it that once, and nothing
shows it again.
Rotating makes a new secret and keeps the former one signing too, for
SHOP_WEBHOOK_ROTATION_HOURS (or the hours given): every delivery then carries
both signatures, so the shop can switch to the new secret at its own pace.

SHOP_WEBHOOK_URL / SHOP_WEBHOOK_SECRET are the default shop's first endpoint
(`from_settings`). `webhook_endpoint_sync_settings` brings it in step with
them: after every `migrate` (post_migrate, which each deploy runs), and in
every process before it records its first event
(`webhook_endpoint_settings_in_step`), so the web, the worker and a command
each apply the settings they were started with. A changed
SHOP_WEBHOOK_SECRET is a rotation: the former one keeps signing for the
rotation window. An emptied SHOP_WEBHOOK_URL disables that endpoint at the
next `migrate` only: a process started without the settings (a worker
missing them) must not silently switch off the endpoint the others use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.conf import payments_settings
from payments.exceptions import SecretUnreadable
from payments.models import Shop, WebhookEndpoint
from payments.models.shops import default_shop_id
from payments.secret_box import seal, unseal
from payments.shop_event_signing import new_secret


def rotation_window(hours: float | None = None) -> timedelta:
    """How long a former secret keeps signing: `hours`, else SHOP_WEBHOOK_ROTATION_HOURS."""
    chosen = float(payments_settings.SHOP_WEBHOOK_ROTATION_HOURS if hours is None else hours)
    if not chosen >= 0:
        raise ValueError("the rotation window is a number of hours, 0 or more")
    return timedelta(hours=chosen)


def _validated(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """ValueError naming what is wrong (the URL, the filter), as the other services raise."""
    try:
        endpoint.full_clean(exclude=["shop"])
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(m)}" for field, m in exc.message_dict.items())
        raise ValueError(problems) from exc
    return endpoint


def webhook_endpoint_add(*, endpoint: WebhookEndpoint) -> str:
    """Save a new (unsaved) endpoint with a secret made for it; the secret, shown this once.

    ValueError says what is wrong (the URL, the filter); nothing is written then.
    """
    secret = new_secret()
    endpoint.secret_sealed = seal(secret)
    _validated(endpoint).save(force_insert=True)
    return secret


def webhook_endpoint_create(
    *,
    shop: Shop,
    url: str,
    event_types: Sequence[str] = (),
    description: str = "",
    enabled: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint of `shop`, and its secret: shown this once, only sealed it is kept."""
    endpoint = WebhookEndpoint(
        shop=shop,
        url=url.strip(),
        description=description.strip(),
        enabled=enabled,
        event_types=list(dict.fromkeys(t.strip() for t in event_types if t.strip())),
    )
    return endpoint, webhook_endpoint_add(endpoint=endpoint)


def webhook_endpoint_rotate(
    *, endpoint: WebhookEndpoint, hours: float | None = None
) -> tuple[str, datetime]:
    """A new secret for `endpoint` (returned once) and when the former one stops signing.

    The settings' endpoint is rotated by changing SHOP_WEBHOOK_SECRET (ValueError here).
    """
    if endpoint.from_settings:
        raise ValueError(
            "this endpoint is SHOP_WEBHOOK_URL's: change SHOP_WEBHOOK_SECRET to rotate it "
            "(the former secret keeps signing for SHOP_WEBHOOK_ROTATION_HOURS)"
        )
    secret, now = new_secret(), timezone.now()
    expires = now + rotation_window(hours)
    with transaction.atomic():
        current = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        current.previous_secret_sealed = current.secret_sealed
        current.previous_secret_expires_at = expires
        current.secret_sealed = seal(secret)
        current.save(
            update_fields=["secret_sealed", "previous_secret_sealed", "previous_secret_expires_at"]
        )
    endpoint.refresh_from_db()
    return secret, expires


def webhook_endpoint_set_enabled(*, endpoint: WebhookEndpoint, enabled: bool) -> bool:
    """Switch an endpoint on or off; True when that changed something.

    Off, it gets no new event and its pending deliveries wait; on again, the
    redelivery sweep sends those within a minute or two (each given up if
    it fails after its retry window). The settings' endpoint follows
    SHOP_WEBHOOK_URL instead (ValueError).
    """
    if endpoint.from_settings:
        raise ValueError(
            "this endpoint is SHOP_WEBHOOK_URL's: it is on while SHOP_WEBHOOK_URL is set"
        )
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk).exclude(enabled=enabled)
    updated = changed.update(enabled=enabled)
    endpoint.enabled = enabled
    return bool(updated)


# --- The settings' endpoint --------------------------------------------------------


def _opened(sealed: str) -> str | None:
    try:
        return unseal(sealed) if sealed else ""
    except SecretUnreadable:
        return None  # sealed with a key no longer known: replaced by the setting's


def _settings_endpoint() -> WebhookEndpoint | None:
    return (
        WebhookEndpoint.objects.select_for_update(of=("self",))
        .filter(from_settings=True, shop__is_default=True)
        .first()
    )


def _create_settings_endpoint(url: str, secret: str) -> WebhookEndpoint | None:
    """Made with the settings' values; None when another process made it meanwhile."""
    try:
        with transaction.atomic():
            return WebhookEndpoint.objects.create(
                shop_id=default_shop_id(),
                url=url,
                description="SHOP_WEBHOOK_URL",
                from_settings=True,
                secret_sealed=seal(secret) if secret else "",
            )
    except IntegrityError:
        return None


def _settings_changes(endpoint: WebhookEndpoint, url: str, secret: str) -> dict[str, object]:
    changes: dict[str, object] = {}
    if endpoint.url != url:
        changes["url"] = url
    if not endpoint.enabled:
        changes["enabled"] = True
    current = _opened(endpoint.secret_sealed)
    if current != secret:
        changes["secret_sealed"] = seal(secret) if secret else ""
        if current:  # a rotation: the former secret keeps signing for the window
            changes["previous_secret_sealed"] = endpoint.secret_sealed
            changes["previous_secret_expires_at"] = timezone.now() + rotation_window()
    return changes


def webhook_endpoint_sync_settings(*, disable_when_unset: bool = True) -> WebhookEndpoint | None:
    """Bring the default shop's settings endpoint in step with SHOP_WEBHOOK_URL / _SECRET.

    Made when the URL is set and it does not exist; its URL and secret
    updated when they changed (the former secret rotated out over the
    rotation window); disabled when the URL is empty (if `disable_when_unset`).
    Idempotent, and safe with several processes at once. Returns the
    endpoint, if there is one.
    """
    url, secret = payments_settings.SHOP_WEBHOOK_URL.strip(), payments_settings.SHOP_WEBHOOK_SECRET
    with transaction.atomic():
        endpoint = _settings_endpoint()
        if not url:
            if disable_when_unset and endpoint is not None and endpoint.enabled:
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
                endpoint.enabled = False
            return endpoint
        if endpoint is None:
            made = _create_settings_endpoint(url, secret)
            if made is not None:
                return made
            endpoint = _settings_endpoint()
            assert endpoint is not None  # made by the other process
        changes = _settings_changes(endpoint, url, secret)
        if changes:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**changes)
            endpoint.refresh_from_db()
    return endpoint


_in_step_with: tuple[str, str] | None = None  # the settings this process last synced
_in_step_since: float | None = None  # time.monotonic() when that sync took effect here
_in_step_lock = threading.Lock()


def webhook_endpoint_settings_in_step_since() -> float | None:
    """When (time.monotonic()) this process's last sync of the settings' endpoint took effect;
    a read of the endpoints made before it may predate the endpoint that sync made."""
    return _in_step_since


def webhook_endpoint_settings_in_step() -> bool:
    """Sync the settings' endpoint once per process (again when the settings change);
    True when this call synced it (endpoints read before may be out of date).

    Called before recording an event, in the caller's transaction; the sync
    counts as done only once that transaction commits, so a rollback makes
    the next event sync again. Empty settings change nothing here (`migrate`
    disables the endpoint then).
    """
    wanted = (payments_settings.SHOP_WEBHOOK_URL, payments_settings.SHOP_WEBHOOK_SECRET)
    if _in_step_with == wanted:
        return False
    webhook_endpoint_sync_settings(disable_when_unset=False)
    transaction.on_commit(partial(_remember_in_step, wanted))
    return True


def _remember_in_step(synced: tuple[str, str] | None) -> None:
    global _in_step_with, _in_step_since
    with _in_step_lock:
        _in_step_with = synced
        _in_step_since = time.monotonic()


def settings_changed(*, setting: str, **kwargs: object) -> None:
    """setting_changed (tests, override_settings): the next event syncs the endpoint again."""
    if setting in {"SHOP_WEBHOOK_URL", "SHOP_WEBHOOK_SECRET"}:
        _remember_in_step(None)


def sync_on_migrate(*, using: str, apps: object = None, **kwargs: object) -> None:
    """post_migrate: the settings' endpoint is in step after every deploy's `migrate`."""
    from django.apps.registry import Apps
    from django.db import DEFAULT_DB_ALIAS

    if using != DEFAULT_DB_ALIAS or not isinstance(apps, Apps):
        return
    try:
        apps.get_model("payments", "WebhookEndpoint")
    except LookupError:  # migrated back to before 0007: no table to keep in step
        return
    webhook_endpoint_sync_settings()
