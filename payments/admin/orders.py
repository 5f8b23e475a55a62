"""Orders and payments: the lists, an order's page with everything about it, its actions.

An order's page shows its payments, flags, resolutions, transitions and
notifications (read-only inlines). OrderAdmin also mounts the pages beyond
the model admins: the dashboard (payments.admin.dashboard), and an order's
review (payments.admin.review) and resolve (payments.admin.resolve) pages.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from payments.admin.actions import describe_reconcile, run_on_selected
from payments.admin.base import (
    SEARCH_MATCHES,
    PaymentAmounts,
    ReadOnlyInline,
    RefundAmount,
    ScaleAdmin,
    ShopScopedAdmin,
    as_uuid,
    order_ids,
)
from payments.admin.csv import (
    ORDER_CSV,
    PAYMENT_CSV,
    csv_response,
    order_csv_row,
    payment_csv_row,
)
from payments.admin.dashboard import dashboard_view
from payments.admin.filters import (
    CurrencyFilter,
    OrderFlaggedFilter,
    PaymentOrderFlaggedFilter,
    ShopFilter,
)
from payments.admin.resolve import order_resolve_view, quote_text, refunded_text
from payments.admin.review import can_review, order_review_view, review_action
from payments.models import (
    Notification,
    Order,
    OrderFlag,
    OrderResolution,
    OrderTransition,
    Payment,
)
from payments.money import display
from payments.services.review import orders_reconcile


class PaymentInline(PaymentAmounts, ReadOnlyInline):
    model = Payment
    fields = ("payment_id", "status", "paid", "confirmed", "paid_at", "source")
    readonly_fields = fields


class FlagInline(ReadOnlyInline):
    model = OrderFlag
    fields = ("kind", "detail", "created", "reviewed_at", "reviewed_by", "review_comment")
    readonly_fields = fields


class TransitionInline(ReadOnlyInline):
    model = OrderTransition
    fields = ("created", "from_status", "to_status", "reason")
    readonly_fields = fields
    show_change_link = False


class ResolutionInline(RefundAmount, ReadOnlyInline):
    model = OrderResolution
    fields = ("created", "action", "reason", "refund_amount", "reference", "user_name")
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = "resolutions (staff decisions)"


class NotificationInline(ReadOnlyInline):
    model = Notification
    fields = ("received_at", "status", "payment_id", "outcome", "detail", "times_received")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(ShopScopedAdmin, ScaleAdmin):
    shop_path = "shop"
    shop_column = True
    list_display = ("reference", "amount", "status", "flagged", "transaction", "created")
    list_filter = (
        ShopFilter,
        "status",
        OrderFlaggedFilter,
        CurrencyFilter,
        ("created", admin.DateFieldListFilter),
    )
    search_fields = ("=reference", "=transaction", "=id", "=payments__payment_id")
    search_help_text = "An exact reference, transaction, order id or payment id."
    sortable_by = ("reference", "created")
    readonly_fields = (
        "id", "shop", "reference", "amount", "amount_int", "currency", "quote", "transaction",
        "payment_url", "status", "refunded", "open_flags", "failure_reason", "deadline",
        "multipay", "instant_only",
        "email", "autosell", "data", "description", "return_success", "return_failure",
        "created_by", "created", "updated",
    )  # fmt: skip
    fields = readonly_fields
    inlines = (PaymentInline, FlagInline, ResolutionInline, TransitionInline, NotificationInline)
    actions = ("reconcile_selected", "mark_flags_reviewed", "export_csv")

    @admin.display(description="amount")
    def amount(self, order: Order) -> str:
        return display(order.amount_int, order.currency)

    @admin.display(description="quote")
    def quote(self, order: Order) -> str:
        return quote_text(order)

    @admin.display(description="refunded")
    def refunded(self, order: Order) -> str:
        return refunded_text(order)

    @admin.display(description="open flags")
    def flagged(self, order: Order) -> str:
        return format_html("<strong>{}</strong>", order.open_flags) if order.open_flags else "-"

    def search(
        self, queryset: QuerySet[Order], term: str, orders: QuerySet[Order]
    ) -> QuerySet[Order]:
        """ORed as a list of ids (a bitmap OR); `queryset` is the user's orders already."""
        match = Q(reference=term)
        uid = as_uuid(term)
        if uid is not None:
            paid_by = Payment.objects.filter(payment_id=uid).values_list("order_id", flat=True)
            match |= Q(pk=uid) | Q(transaction=uid) | Q(pk__in=list(paid_by[:SEARCH_MATCHES]))
        return queryset.filter(match)

    # -- permissions of the actions --
    def has_reconcile_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("payments.change_order"))

    def has_review_permission(self, request: HttpRequest) -> bool:
        return can_review(request)

    # -- pages --
    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(partial(dashboard_view, self)), name="payments_dashboard"),
            path(
                "<path:object_id>/review/",
                wrap(partial(order_review_view, self)),
                name="payments_order_review",
            ),
            path(
                "<path:object_id>/resolve/",
                wrap(partial(order_resolve_view, self)),
                name="payments_order_resolve",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_review": can_review(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    # -- actions --
    @admin.action(
        description="Reconcile selected orders now (apply their notifications, expire if due)",
        permissions=["reconcile"],
    )
    def reconcile_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        run_on_selected(
            self,
            request,
            queryset,
            what="orders",
            run=lambda ids: describe_reconcile(orders_reconcile(order_ids=ids)),
        )

    @admin.action(
        description="Mark open flags of selected orders reviewed…", permissions=["review"]
    )
    def mark_flags_reviewed(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        return review_action(
            self,
            request,
            queryset,
            action="mark_flags_reviewed",
            what="orders",
            flags_of=lambda ids: OrderFlag.objects.filter(order_id__in=ids).order_by(
                "order__reference", "created"
            ),
            cancel_url=reverse("admin:payments_order_changelist"),
        )

    @admin.action(description="Export selected orders as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponseBase:
        return csv_response(
            filename="orders",
            header=ORDER_CSV,
            rows=self.export_rows(queryset.order_by("-created", "-id")),
            row=order_csv_row,
        )


@admin.register(Payment)
class PaymentAdmin(PaymentAmounts, ShopScopedAdmin, ScaleAdmin):
    shop_path = "order__shop"
    list_display = ("payment_id", "order", "status", "paid", "source", "paid_at", "created")
    list_filter = (
        ShopFilter,
        "status",
        "source",
        PaymentOrderFlaggedFilter,
        CurrencyFilter,
        ("created", admin.DateFieldListFilter),
    )
    search_fields = ("=payment_id", "=order__reference", "=order__transaction", "=order__id")
    search_help_text = "An exact payment id, or an order's reference, transaction or id."
    sortable_by = ("created",)
    ordering = ("-created", "-id")
    list_select_related = ("order",)
    readonly_fields = (*(f.name for f in Payment._meta.fields), "paid", "confirmed")
    actions = ("export_csv",)

    def search(
        self, queryset: QuerySet[Payment], term: str, orders: QuerySet[Order]
    ) -> QuerySet[Payment]:
        uid = as_uuid(term)
        if uid is None:
            return queryset.filter(order_id__in=order_ids(orders, reference=term))
        matched = [*order_ids(orders, transaction=uid), uid]
        return queryset.filter(Q(payment_id=uid) | Q(order_id__in=matched))

    @admin.action(description="Export selected payments as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Payment]) -> HttpResponseBase:
        return csv_response(
            filename="payments",
            header=PAYMENT_CSV,
            rows=self.export_rows(queryset.select_related("order").order_by("-created", "-id")),
            row=payment_csv_row,
        )
