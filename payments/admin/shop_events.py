"""Shop events (what this service sends to the shops): endpoints, events, deliveries, attempts.

- Webhook endpoints: add one (its secret is generated and shown once, on the
  page that follows), change its URL, description and filter, and the actions
  rotate the secret (the new one shown once), ping, enable, disable. Each
  endpoint's page lists its latest deliveries and links to all of them.
- Events and deliveries are read-only, with one action: deliver again.

Every list, page and action sees only the user's shops
(payments.admin.base.ShopScopedAdmin; superusers: every shop, with a shop filter):
another shop's row is a 404, never a page that confirms it exists.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from payments.admin.actions import selected_or_refuse
from payments.admin.base import ReadOnlyAdmin, ReadOnlyInline, ShopScopedAdmin, visible_shops
from payments.admin.filters import DeliveryStateFilter, ShopFilter
from payments.choices import SHOP_EVENT_TYPES
from payments.models import (
    ShopEvent,
    ShopEventAttempt,
    ShopEventDelivery,
    WebhookEndpoint,
)
from payments.services.shop_events import shop_event_deliveries_redeliver, shop_event_ping
from payments.services.webhook_endpoints import (
    webhook_endpoint_add,
    webhook_endpoint_rotate,
    webhook_endpoint_set_enabled,
)

RECENT_DELIVERIES = 20  # shown on an endpoint's page; the rest are one link away
# A ping waits for the shop's answer (up to SHOP_WEBHOOK_TIMEOUT) within the admin's request.
PINGS_AT_ONCE = 5


def _redeliver(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, deliveries: QuerySet[Any]
) -> None:
    queued = shop_event_deliveries_redeliver(deliveries=deliveries)
    model_admin.message_user(
        request,
        f"{queued} undelivered delivery(ies) queued (delivered ones are not sent again; "
        "those of a disabled endpoint go out once it is enabled).",
        messages.SUCCESS,
    )


# --- Events and their deliveries -------------------------------------------------


class ShopEventAttemptInline(ReadOnlyInline):
    model = ShopEventAttempt
    fields = ("at", "ok", "http_status", "error", "reply", "duration_ms")
    readonly_fields = fields
    show_change_link = False


class ShopEventDeliveryInline(ReadOnlyInline):
    model = ShopEventDelivery
    fields = (
        "endpoint", "state", "attempts", "next_attempt_at", "delivered_at", "given_up_at",
        "last_error",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="state")
    def state(self, row: ShopEventDelivery) -> str:
        return ShopEventDelivery.State(row.state).label


@admin.register(ShopEvent)
class ShopEventAdmin(ShopScopedAdmin, ReadOnlyAdmin):
    list_display = ("created", "type", "order", "shop", "undelivered")
    list_filter = (ShopFilter, "type")
    search_fields = ("=id", "=order__reference", "=order__id")
    list_select_related = ("order", "shop")
    readonly_fields = ("id", "type", "shop", "order", "created", "sent_body")
    fields = readonly_fields
    inlines = (ShopEventDeliveryInline,)
    actions = ("deliver_again",)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ShopEvent]:
        # A subquery per row shown, not a GROUP BY over every event.
        undelivered = (
            ShopEventDelivery.objects.filter(event=OuterRef("pk"), delivered_at__isnull=True)
            .order_by()
            .values("event")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super().get_queryset(request).annotate(undelivered_n=Coalesce(Subquery(undelivered), 0))
        )

    @admin.display(description="undelivered")
    def undelivered(self, event: Any) -> int:
        return int(event.undelivered_n)

    @admin.display(description="body (as sent)")
    def sent_body(self, event: ShopEvent) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", event.body)

    @admin.action(
        description="Deliver again now (undelivered deliveries; a new retry window)",
        permissions=["change"],
    )
    def deliver_again(self, request: HttpRequest, queryset: QuerySet[ShopEvent]) -> None:
        ids = selected_or_refuse(self, request, queryset, "events")
        if ids is not None:
            _redeliver(self, request, ShopEventDelivery.objects.filter(event_id__in=ids))


class EndpointFilter(admin.SimpleListFilter):
    """The user's endpoints (their shops' only)."""

    title = "endpoint"
    parameter_name = "endpoint"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        endpoints = WebhookEndpoint.objects.filter(shop__in=visible_shops(request))
        return [(str(e.pk), str(e)) for e in endpoints.only("pk", "url")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(endpoint_id=int(value))
        return queryset


@admin.register(ShopEventDelivery)
class ShopEventDeliveryAdmin(ShopScopedAdmin, ReadOnlyAdmin):
    shop_path = "endpoint__shop"
    list_display = ("created", "event_type", "event", "endpoint", "state", "attempts",
                    "next_attempt_at", "last_error")  # fmt: skip
    list_filter = (ShopFilter, DeliveryStateFilter, EndpointFilter)
    search_fields = ("=event__id", "=event__order__reference")
    list_select_related = ("event", "endpoint")
    readonly_fields = (
        "id", "event", "endpoint", "state", "created", "attempts", "delivered_at",
        "next_attempt_at", "gives_up_at", "given_up_at", "last_error", "sent_body",
    )  # fmt: skip
    fields = readonly_fields
    inlines = (ShopEventAttemptInline,)
    actions = ("deliver_again",)
    show_full_result_count = False

    @admin.display(description="type")
    def event_type(self, row: ShopEventDelivery) -> str:
        return row.event.type

    @admin.display(description="state")
    def state(self, row: ShopEventDelivery) -> str:
        return ShopEventDelivery.State(row.state).label

    @admin.display(description="body (as sent)")
    def sent_body(self, row: ShopEventDelivery) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", row.event.body)

    @admin.action(
        description="Deliver again now (undelivered ones; a new retry window)",
        permissions=["change"],
    )
    def deliver_again(self, request: HttpRequest, queryset: QuerySet[ShopEventDelivery]) -> None:
        ids = selected_or_refuse(self, request, queryset, "deliveries")
        if ids is not None:
            _redeliver(self, request, ShopEventDelivery.objects.filter(pk__in=ids))


# --- Webhook endpoints -----------------------------------------------------------


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        label="URL", max_length=2000, assume_scheme="https", help_text="Where events are POSTed."
    )
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in SHOP_EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The event types it takes; none ticked: every type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("shop", "url", "description", "event_types", "enabled")


def _secret_page(
    request: HttpRequest, model_admin: admin.ModelAdmin[Any], shown: list[dict[str, Any]]
) -> TemplateResponse:
    """The page that shows new secrets, once; never cached."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Webhook secret: shown once",
        "shown": shown,
        "changelist_url": reverse("admin:payments_webhookendpoint_changelist"),
    }
    response = TemplateResponse(request, "admin/payments/webhookendpoint/secret.html", context)
    add_never_cache_headers(response)
    return response


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ShopScopedAdmin):
    form = WebhookEndpointForm
    list_display = ("id", "shop", "url", "description", "enabled", "takes", "secret",
                    "created")  # fmt: skip
    list_display_links = ("id", "url")
    list_filter = (ShopFilter, "enabled")
    list_select_related = ("shop",)
    search_fields = ("url", "description")
    actions = ("rotate_secret", "ping", "enable", "disable")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["shop", "url", "description", "event_types", "enabled"]
        return fields if obj is None else [*fields, "secret", "from_settings", "deliveries"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        fixed = ["shop", "secret", "from_settings", "deliveries"]
        return [*fixed, "url", "enabled"] if obj.from_settings else fixed

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not (obj and obj.from_settings) and super().has_delete_permission(request, obj)

    @admin.display(description="takes")
    def takes(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types) or "every event"

    @admin.display(description="secret")
    def secret(self, endpoint: WebhookEndpoint) -> str:
        if endpoint.rotating():
            until = f"{endpoint.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC"
            return f"set; the former one signs too until {until}"
        return "set" if endpoint.secret_sealed else "none"

    @admin.display(description="deliveries")
    def deliveries(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:payments_shopeventdelivery_changelist")
        recent = endpoint.deliveries.select_related("event")[:RECENT_DELIVERIES]
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:payments_shopeventdelivery_change", args=[d.pk]),
                    f"{d.created:%Y-%m-%d %H:%M:%S}",
                    d.event.type,
                    ShopEventDelivery.State(d.state).label,
                    d.attempts,
                    d.last_error or "",
                )
                for d in recent
            ),
        )
        return format_html(
            "<table><tr><th>created</th><th>type</th><th>state</th><th>attempts</th>"
            "<th>last error</th></tr>{}</table>"
            "<p><a href='{}?endpoint={}'>All its deliveries</a></p>",
            rows,
            url,
            endpoint.pk,
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        else:  # a new one: its secret is made here, kept sealed, shown by response_add
            request._webhook_secret = webhook_endpoint_add(endpoint=obj)  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: Any = None
    ) -> HttpResponse:
        secret = getattr(request, "_webhook_secret", "")
        return _secret_page(request, self, [{"endpoint": obj, "secret": secret, "expires": None}])

    @admin.action(
        description="Rotate the secret (the former one signs too for a while)",
        permissions=["change"],
    )
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> HttpResponse | None:
        ids = selected_or_refuse(self, request, queryset, "endpoints")
        if ids is None:
            return None
        shown = []
        for endpoint in WebhookEndpoint.objects.filter(pk__in=ids):
            try:
                secret, expires = webhook_endpoint_rotate(endpoint=endpoint)
            except ValueError as exc:
                self.message_user(request, f"{endpoint}: {exc}", messages.WARNING)
                continue
            shown.append({"endpoint": endpoint, "secret": secret, "expires": expires})
        return _secret_page(request, self, shown) if shown else None

    @admin.action(
        description="Ping (send a test event now and show the answer)", permissions=["change"]
    )
    def ping(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        ids = list(queryset.order_by().values_list("pk", flat=True)[: PINGS_AT_ONCE + 1])
        if len(ids) > PINGS_AT_ONCE:
            self.message_user(
                request, f"Ping at most {PINGS_AT_ONCE} endpoints at once.", messages.ERROR
            )
            return
        for endpoint in WebhookEndpoint.objects.filter(pk__in=ids):
            attempt = shop_event_ping(endpoint=endpoint)
            if attempt is None:
                self.message_user(request, f"{endpoint}: not sent", messages.ERROR)
                continue
            answer = attempt.error or attempt.reply or "(no body)"
            status = f"HTTP {attempt.http_status}" if attempt.http_status else "no answer"
            self.message_user(
                request,
                f"{endpoint}: {status} in {attempt.duration_ms} ms: {answer}",
                messages.SUCCESS if attempt.ok else messages.ERROR,
            )

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        self._switch(request, queryset, enabled=True)

    @admin.action(description="Disable (pending deliveries wait)", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        self._switch(request, queryset, enabled=False)

    def _switch(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint], *, enabled: bool
    ) -> None:
        ids = selected_or_refuse(self, request, queryset, "endpoints")
        changed = 0
        for endpoint in WebhookEndpoint.objects.filter(pk__in=ids or []):
            try:
                changed += webhook_endpoint_set_enabled(endpoint=endpoint, enabled=enabled)
            except ValueError as exc:
                self.message_user(request, f"{endpoint}: {exc}", messages.WARNING)
        word = "enabled" if enabled else "disabled"
        self.message_user(request, f"{changed} endpoint(s) {word}.", messages.SUCCESS)
