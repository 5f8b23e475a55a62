"""A shop's webhook endpoints: where its events are POSTed, each signed with its own secret."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.utils import timezone

from payments.choices import SHOP_EVENT_TYPES
from payments.models.shops import Shop


class WebhookEndpoint(models.Model):
    """One URL of a shop that takes its events (payments.services.webhook_endpoints).

    `event_types` is the filter: the types this endpoint takes, empty for
    every type. The secret that signs its deliveries is sealed
    (payments.secret_box) and shown in clear only once, when it is made. While
    a rotation runs, the former secret (`previous_secret_sealed`) signs too
    until `previous_secret_expires_at`, so the shop may verify with either.

    `from_settings` marks the default shop's endpoint that SHOP_WEBHOOK_URL and
    SHOP_WEBHOOK_SECRET define (`webhook_endpoint_sync_settings` keeps its URL,
    secret and on/off in step with them); at most one exists.
    """

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(
        max_length=2000, verbose_name="URL", validators=[URLValidator(schemes=["http", "https"])]
    )
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    event_types = models.JSONField(
        default=list, blank=True, help_text="The event types it takes; empty: every type."
    )
    secret_sealed = models.TextField(blank=True, editable=False)
    previous_secret_sealed = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    from_settings = models.BooleanField(default=False, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("shop", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["shop"],
                condition=models.Q(from_settings=True),
                name="one_settings_webhook_endpoint",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.url}"

    def clean(self) -> None:
        """The filter names known event types only: a typo would silently take nothing."""
        types = self.event_types
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ValidationError({"event_types": "a list of event types"})
        unknown = sorted(set(types) - set(SHOP_EVENT_TYPES))
        if unknown:
            raise ValidationError(
                {
                    "event_types": f"unknown event type(s): {', '.join(unknown)}; "
                    f"known: {', '.join(SHOP_EVENT_TYPES)}"
                }
            )

    def takes(self, event_type: str) -> bool:
        """Whether its filter lets events of `event_type` through (empty: every type)."""
        return not self.event_types or event_type in self.event_types

    def rotating(self, now: datetime | None = None) -> bool:
        """Whether a former secret still signs (a rotation is running)."""
        expires = self.previous_secret_expires_at
        moment = timezone.now() if now is None else now
        return bool(self.previous_secret_sealed) and expires is not None and expires > moment
