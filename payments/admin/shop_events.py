"""Shop events (what this service sends to the shop): every event, every attempt.

Read-only, with one action: deliver an undelivered event again.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from payments.admin.base import ReadOnlyAdmin, ReadOnlyInline
from payments.admin.filters import ShopEventStateFilter
from payments.models import ShopEvent, ShopEventAttempt
from payments.services.shop_events import shop_event_redeliver


class ShopEventAttemptInline(ReadOnlyInline):
    model = ShopEventAttempt
    fields = ("at", "ok", "http_status", "error", "reply", "duration_ms")
    readonly_fields = fields
    show_change_link = False


@admin.register(ShopEvent)
class ShopEventAdmin(ReadOnlyAdmin):
    list_display = ("created", "type", "order", "state", "attempts", "next_attempt_at")
    list_filter = (ShopEventStateFilter, "type")
    search_fields = ("=id", "=order__reference", "=order__id")
    list_select_related = ("order",)
    readonly_fields = (
        "id", "type", "order", "state", "created", "attempts", "delivered_at",
        "next_attempt_at", "gives_up_at", "given_up_at", "last_error", "sent_body",
    )  # fmt: skip
    fields = readonly_fields
    inlines = (ShopEventAttemptInline,)
    actions = ("deliver_again",)
    show_full_result_count = False

    @admin.display(description="state")
    def state(self, event: ShopEvent) -> str:
        return ShopEvent.State(event.state).label

    @admin.display(description="body (as sent)")
    def sent_body(self, event: ShopEvent) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", event.body)

    @admin.action(
        description="Deliver again now (undelivered events; a new retry window)",
        permissions=["change"],
    )
    def deliver_again(self, request: HttpRequest, queryset: QuerySet[ShopEvent]) -> None:
        queued = sum(shop_event_redeliver(event_id=event.pk) for event in queryset)
        skipped = queryset.count() - queued
        self.message_user(request, f"{queued} event(s) queued for delivery.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} already delivered: not sent again.", messages.WARNING
            )
