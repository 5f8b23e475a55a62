"""Staff review of the shop webhooks: every event, every attempt; read-only, one action.

Imported at the bottom of payments/admin.py.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from payments.models import ShopEvent, ShopEventAttempt
from payments.services.shop_events import shop_event_redeliver


class ShopEventAttemptInline(admin.TabularInline):
    model = ShopEventAttempt
    fields = ("at", "ok", "http_status", "error", "reply", "duration_ms")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, str(label)) for value, label in ShopEvent.State.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case ShopEvent.State.DELIVERED:
                return queryset.filter(delivered_at__isnull=False)
            case ShopEvent.State.GIVEN_UP:
                return queryset.filter(delivered_at__isnull=True, given_up_at__isnull=False)
            case ShopEvent.State.PENDING:
                return queryset.filter(delivered_at__isnull=True, given_up_at__isnull=True)
        return queryset


@admin.register(ShopEvent)
class ShopEventAdmin(admin.ModelAdmin):
    list_display = ("created", "type", "order", "state", "attempts", "next_attempt_at")
    list_filter = (StateFilter, "type")
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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
