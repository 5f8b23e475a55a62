"""Notifications (the gateway's IPN) as stored, and the log of rejected ones.

Replaying a notification applies money to orders again: superusers only.
A shop's staff see the notifications its gateway key signed (`Notification.shop`);
rejected requests are signed by no shop's key, so only superusers see them.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.utils.html import format_html

from payments.admin.actions import describe_replay, run_on_selected
from payments.admin.base import (
    ReadOnlyAdmin,
    ScaleAdmin,
    ShopScopedAdmin,
    SuperuserOnlyAdmin,
    as_uuid,
    order_ids,
)
from payments.admin.csv import NOTIFICATION_CSV, csv_response, notification_csv_row
from payments.admin.filters import NotificationStatusFilter, RejectionReasonFilter, ShopFilter
from payments.admin.pagination import EstimatedCountPaginator
from payments.models import Notification, Order, RejectedNotification
from payments.services.review import notifications_replay


@admin.register(Notification)
class NotificationAdmin(ShopScopedAdmin, ScaleAdmin):
    shop_path = "shop"
    shop_column = True
    list_display = (
        "received_at", "status", "transaction", "outcome", "needs_review", "times_received",
    )  # fmt: skip
    list_filter = (
        ShopFilter,
        "outcome",
        "needs_review",
        NotificationStatusFilter,
        ("received_at", admin.DateFieldListFilter),
    )
    search_fields = ("=transaction", "=payment_id", "=order__reference", "=order__id")
    search_help_text = "An exact transaction, payment id, order id or order reference."
    sortable_by = ("received_at",)
    readonly_fields = (
        "shop", "received_at", "last_received_at", "times_received", "remote_addr", "verified",
        "status", "transaction", "payment_id", "order", "outcome", "detail", "needs_review",
        "applied_at", "raw_body", "headers",
    )  # fmt: skip
    fields = readonly_fields
    actions = ("replay", "export_csv")

    @admin.display(description="signature")
    def verified(self, notification: Notification) -> str:
        return "verified (only verified notifications are stored)"

    @admin.display(description="raw body")
    def raw_body(self, notification: Notification) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", notification.body_text)

    def search(
        self, queryset: QuerySet[Notification], term: str, orders: QuerySet[Order]
    ) -> QuerySet[Notification]:
        uid = as_uuid(term)
        if uid is None:
            return queryset.filter(order_id__in=order_ids(orders, reference=term))
        return queryset.filter(Q(transaction=uid) | Q(payment_id=uid) | Q(order_id=uid))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        # The raw body and headers are for the detail page (read when shown), not for lists.
        return super().get_queryset(request).defer("body", "headers")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        """Replaying applies money to orders again: superusers only."""
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.action(
        description="Replay selected notifications (apply again; idempotent)",
        permissions=["replay"],
    )
    def replay(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        run_on_selected(
            self,
            request,
            queryset,
            what="notifications",
            run=lambda ids: describe_replay(notifications_replay(notification_ids=ids)),
        )

    @admin.action(description="Export selected notifications as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Notification]
    ) -> HttpResponseBase:
        return csv_response(
            filename="notifications",
            header=NOTIFICATION_CSV,
            rows=self.export_rows(queryset.order_by("-received_at", "-id")),
            row=notification_csv_row,
        )


@admin.register(RejectedNotification)
class RejectedNotificationAdmin(SuperuserOnlyAdmin, ReadOnlyAdmin):
    """Requests no shop's key signed: of the whole service, for superusers only."""

    list_display = ("window_start", "reason", "remote_addr", "count", "last_seen")
    list_filter = (RejectionReasonFilter,)
    readonly_fields = ("window_start", "reason", "remote_addr", "count", "last_seen", "sample")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
