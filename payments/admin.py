"""Staff review: orders with their payments, flags and notifications; the IPN log.

Money and gateway fields are read-only: they change only through the
services (the gateway's notifications and reconciliation).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from payments.models import (
    LedgerCheckpoint,
    Notification,
    Order,
    OrderFlag,
    OrderTransition,
    Payment,
    ReconciliationRun,
    RejectedNotification,
)
from payments.money import display


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ("payment_id", "status", "paid", "amount_valid", "amount_total", "paid_at", "source")
    readonly_fields = fields

    @admin.display(description="amount")
    def paid(self, payment: Payment) -> str:
        return display(payment.amount_int, payment.currency) if payment.amount_int else "-"


class FlagInline(ReadOnlyInline):
    model = OrderFlag
    fields = ("kind", "detail", "created", "reviewed_at", "reviewed_by", "review_comment")
    readonly_fields = fields


class TransitionInline(ReadOnlyInline):
    model = OrderTransition
    fields = ("created", "from_status", "to_status", "reason")
    readonly_fields = fields
    show_change_link = False


class NotificationInline(ReadOnlyInline):
    model = Notification
    fields = ("received_at", "status", "payment_id", "outcome", "detail", "times_received")
    readonly_fields = fields


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("reference", "amount", "status", "transaction", "created")
    list_filter = ("status", "currency")
    search_fields = ("=reference", "=transaction")
    readonly_fields = (
        "id", "reference", "amount", "amount_int", "currency", "transaction", "payment_url",
        "status", "failure_reason", "deadline", "multipay", "instant_only", "email", "autosell",
        "data", "description", "return_success", "return_failure", "created_by", "created",
        "updated",
    )  # fmt: skip
    fields = readonly_fields
    inlines = (PaymentInline, FlagInline, TransitionInline, NotificationInline)
    show_full_result_count = False

    @admin.display(description="amount")
    def amount(self, order: Order) -> str:
        return display(order.amount_int, order.currency)


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("payment_id", "order", "status", "paid", "source", "created")
    list_filter = ("status", "source")
    search_fields = ("=payment_id", "=order__reference")
    list_select_related = ("order",)
    readonly_fields = tuple(f.name for f in Payment._meta.fields)
    show_full_result_count = False

    @admin.display(description="amount")
    def paid(self, payment: Payment) -> str:
        return display(payment.amount_int, payment.currency) if payment.amount_int else "-"


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at", "status", "transaction", "outcome", "needs_review", "times_received",
    )  # fmt: skip
    list_filter = ("outcome", "needs_review", "status")
    search_fields = ("=transaction", "=payment_id")
    readonly_fields = (
        "received_at", "last_received_at", "times_received", "remote_addr", "verified",
        "status", "transaction", "payment_id", "order", "outcome", "detail", "needs_review",
        "applied_at", "raw_body", "headers",
    )  # fmt: skip
    fields = readonly_fields
    show_full_result_count = False

    @admin.display(description="signature")
    def verified(self, notification: Notification) -> str:
        return "verified (only verified notifications are stored)"

    @admin.display(description="raw body")
    def raw_body(self, notification: Notification) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", notification.body_text)


@admin.register(RejectedNotification)
class RejectedNotificationAdmin(ReadOnlyAdmin):
    list_display = ("window_start", "reason", "remote_addr", "count", "last_seen")
    list_filter = ("reason",)
    readonly_fields = ("window_start", "reason", "remote_addr", "count", "last_seen", "sample")


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("started", "sweep", "status", "dry_run", "counts", "finished")
    list_filter = ("sweep", "status", "dry_run")
    readonly_fields = ("sweep", "status", "dry_run", "counts", "error", "started", "finished")


@admin.register(LedgerCheckpoint)
class LedgerCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("currency", "last_index", "last_date", "updated")
    readonly_fields = ("currency", "last_index", "last_date", "updated")


from payments import admin_webhooks  # noqa: E402,F401
