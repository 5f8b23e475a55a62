"""Flags and what staff decided about them: the flags, the review trail, the resolutions.

The two trails (FlagReview, OrderResolution) are audit records: nobody adds,
changes or deletes one here, superusers included. They are written by the
review and resolve pages (payments.admin.review, payments.admin.resolve).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from payments.admin.base import (
    ReadOnlyInline,
    RefundAmount,
    ScaleAdmin,
    ShopScopedAdmin,
    as_uuid,
    order_ids,
)
from payments.admin.filters import FlagOpenFilter, ShopFilter
from payments.admin.review import can_review, review_action
from payments.models import FlagReview, Order, OrderFlag, OrderResolution


class FlagReviewInline(ReadOnlyInline):
    model = FlagReview
    fields = ("created", "reviewer_name", "comment")
    readonly_fields = fields
    show_change_link = False


@admin.register(OrderFlag)
class OrderFlagAdmin(ShopScopedAdmin, ScaleAdmin):
    shop_path = "order__shop"
    list_display = ("created", "kind", "order", "detail", "reviewed_at", "reviewed_by")
    list_filter = (ShopFilter, FlagOpenFilter, "kind", ("created", admin.DateFieldListFilter))
    search_fields = ("=order__reference", "=order__transaction", "=order__id")
    search_help_text = "An exact order reference, transaction or order id."
    sortable_by = ("created",)
    ordering = ("-created", "-id")
    list_select_related = ("order", "reviewed_by")
    readonly_fields = (
        "order", "kind", "detail", "created", "reviewed_at", "reviewed_by", "review_comment",
    )  # fmt: skip
    fields = readonly_fields
    inlines = (FlagReviewInline,)
    actions = ("mark_reviewed",)

    def search(
        self, queryset: QuerySet[OrderFlag], term: str, orders: QuerySet[Order]
    ) -> QuerySet[OrderFlag]:
        uid = as_uuid(term)
        matched = order_ids(orders, reference=term)
        if uid is not None:
            matched += [*order_ids(orders, transaction=uid), uid]
        return queryset.filter(order_id__in=matched)

    def has_review_permission(self, request: HttpRequest) -> bool:
        return can_review(request)

    @admin.action(description="Mark selected flags reviewed…", permissions=["review"])
    def mark_reviewed(
        self, request: HttpRequest, queryset: QuerySet[OrderFlag]
    ) -> HttpResponse | None:
        return review_action(
            self,
            request,
            queryset,
            action="mark_reviewed",
            what="flags",
            flags_of=lambda ids: OrderFlag.objects.filter(pk__in=ids).order_by("created", "id"),
            cancel_url=reverse("admin:payments_orderflag_changelist"),
        )


@admin.register(FlagReview)
class FlagReviewAdmin(ShopScopedAdmin, ScaleAdmin):
    """The audit trail of flag reviews: nobody changes or deletes it, superusers included."""

    shop_path = "order__shop"
    list_filter = (ShopFilter,)
    list_display = ("created", "reviewer_name", "order", "flag", "comment")
    search_fields = ("=order__reference", "=reviewer_name")
    search_help_text = "An exact order reference or reviewer username."
    sortable_by = ("created",)
    list_select_related = ("order", "flag")
    readonly_fields = ("created", "reviewer", "reviewer_name", "order", "flag", "comment")
    fields = readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def search(
        self, queryset: QuerySet[FlagReview], term: str, orders: QuerySet[Order]
    ) -> QuerySet[FlagReview]:
        return queryset.filter(
            Q(reviewer_name=term) | Q(order_id__in=order_ids(orders, reference=term))
        )


@admin.register(OrderResolution)
class OrderResolutionAdmin(RefundAmount, ShopScopedAdmin, ScaleAdmin):
    """The audit trail of staff decisions on orders: written only by the resolve page
    (payments.services.resolutions); nobody adds, changes or deletes one here."""

    shop_path = "order__shop"
    list_display = (
        "created", "action", "order", "refund_amount", "reference", "user_name", "reason",
    )  # fmt: skip
    list_filter = (ShopFilter, "action", ("created", admin.DateFieldListFilter))
    search_fields = ("=order__reference", "=user_name", "=reference")
    search_help_text = "An exact order reference, username or refund reference."
    sortable_by = ("created",)
    ordering = ("-created", "-id")
    list_select_related = ("order",)
    readonly_fields = (
        "created", "order", "action", "reason", "refund_amount", "reference", "user",
        "user_name",
    )  # fmt: skip
    fields = readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def search(
        self, queryset: QuerySet[OrderResolution], term: str, orders: QuerySet[Order]
    ) -> QuerySet[OrderResolution]:
        return queryset.filter(
            Q(user_name=term)
            | Q(reference=term)
            | Q(order_id__in=order_ids(orders, reference=term))
        )
