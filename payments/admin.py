"""Staff review: orders with their payments, flags and notifications; the IPN log; a dashboard.

Money and gateway fields are read-only: they change only through the
services (the gateway's notifications and reconciliation). Actions call
services too (payments.services.review), each bounded to 500 rows.

Who may do what (groups made by `manage.py create_review_roles`):

- staff only (Django's admin_view); a staff user without permissions sees nothing;
- view permissions: every list, every page, the dashboard, CSV export;
- change permission on flags ("Payments reviewers"): mark flags reviewed, and resolve
  orders (accept as paid, mark invalid, cancel, record a refund: admin_views);
- change permission on orders (superusers): reconcile selected orders;
- replaying a notification: superusers only (`has_replay_permission`).

Built for a million orders and millions of notifications: no full COUNT(*)
(EstimatedCountPaginator), filters with fixed choices on indexed columns,
searches that are exact index lookups, sorting only on indexed columns, no
date drill-down (date_hierarchy) and no facet counts.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any
from uuid import UUID

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from payments import admin_views
from payments.admin_tools import (
    CurrencyFilter,
    EstimatedCountPaginator,
    FlagOpenFilter,
    NotificationStatusFilter,
    OrderFlaggedFilter,
    PaymentOrderFlaggedFilter,
    RejectionReasonFilter,
    SweepFilter,
    as_uuid,
    csv_money,
    csv_response,
)
from payments.models import (
    FlagReview,
    LedgerCheckpoint,
    Notification,
    Order,
    OrderFlag,
    OrderResolution,
    OrderTransition,
    Payment,
    ReconciliationRun,
    RejectedNotification,
)
from payments.money import BTC, display
from payments.services.review import notifications_replay, orders_reconcile

SEARCH_MATCHES = 100  # orders a reference or transaction may stand for in a search

# CSV exports: money as a decimal string in the currency's units, next to its currency.
ORDER_CSV = (
    "id", "reference", "status", "amount", "currency", "amount_int", "open_flags",
    "transaction", "created", "deadline", "description",
)  # fmt: skip
PAYMENT_CSV = (
    "payment_id", "order_id", "order_reference", "status", "amount", "currency",
    "amount_int", "method", "source", "paid_at", "created",
)  # fmt: skip
NOTIFICATION_CSV = (
    "id", "received_at", "status", "transaction", "payment_id", "order_id",
    "outcome", "detail", "needs_review", "times_received", "applied_at",
)  # fmt: skip


def _order_csv_row(o: Order) -> tuple[Any, ...]:
    return (
        o.pk, o.reference, o.status, csv_money(o.amount_int, o.currency), o.currency,
        o.amount_int, o.open_flags, o.transaction, o.created, o.deadline, o.description,
    )  # fmt: skip


def _payment_csv_row(p: Payment) -> tuple[Any, ...]:
    return (
        p.payment_id, p.order_id, p.order.reference, p.status,
        csv_money(p.amount_int, p.currency), p.currency, p.amount_int, p.method,
        p.source, p.paid_at, p.created,
    )  # fmt: skip


def _notification_csv_row(n: Notification) -> tuple[Any, ...]:
    return (
        n.pk, n.received_at, n.status, n.transaction, n.payment_id, n.order_id,
        n.outcome, n.detail, n.needs_review, n.times_received, n.applied_at,
    )  # fmt: skip


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PaymentAmounts:
    """The `paid` and `confirmed` columns of a payment, in the list and in an order's inline."""

    @admin.display(description="amount")
    def paid(self, payment: Payment) -> str:
        return display(payment.amount_int, payment.currency) if payment.amount_int else "-"

    @admin.display(description="confirmed / total")
    def confirmed(self, payment: Payment) -> str:
        if payment.amount_total is None:
            return "-"
        valid, total = payment.amount_valid or 0, payment.amount_total
        return f"{display(valid, BTC)} / {display(total, BTC)}"


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


class RefundAmount:
    """The `amount` column of a resolution: a refund's amount in its currency, else "-"."""

    @admin.display(description="amount")
    def refund_amount(self, resolution: OrderResolution) -> str:
        if resolution.amount_int is None:
            return "-"
        return display(resolution.amount_int, resolution.currency)


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


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ScaleAdmin(ReadOnlyAdmin):
    """A read-only changelist that stays fast on a table of millions of rows."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def export_rows(self, queryset: QuerySet[Any]) -> Any:
        return queryset.iterator(chunk_size=2000)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Exact lookups only, each on an index (`search`): no LIKE scan, no duplicates."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return self.search(queryset, term), False

    def search(self, queryset: QuerySet[Any], term: str) -> QuerySet[Any]:
        raise NotImplementedError


def _order_ids(**lookup: Any) -> list[UUID]:
    return list(Order.objects.filter(**lookup).values_list("pk", flat=True)[:SEARCH_MATCHES])


@admin.register(Order)
class OrderAdmin(ScaleAdmin):
    list_display = ("reference", "amount", "status", "flagged", "transaction", "created")
    list_filter = (
        "status",
        OrderFlaggedFilter,
        CurrencyFilter,
        ("created", admin.DateFieldListFilter),
    )
    search_fields = ("=reference", "=transaction", "=id", "=payments__payment_id")
    search_help_text = "An exact reference, transaction, order id or payment id."
    sortable_by = ("reference", "created")
    readonly_fields = (
        "id", "reference", "amount", "amount_int", "currency", "quote", "transaction",
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
        return admin_views.quote_text(order)

    @admin.display(description="refunded")
    def refunded(self, order: Order) -> str:
        return admin_views.refunded_text(order)

    @admin.display(description="open flags")
    def flagged(self, order: Order) -> str:
        return format_html("<strong>{}</strong>", order.open_flags) if order.open_flags else "-"

    def search(self, queryset: QuerySet[Order], term: str) -> QuerySet[Order]:
        """ORed as a list of ids (a bitmap OR)."""
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
        return admin_views.can_review(request)

    # -- pages --
    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "dashboard/",
                wrap(partial(admin_views.dashboard_view, self)),
                name="payments_dashboard",
            ),
            path(
                "<path:object_id>/review/",
                wrap(partial(admin_views.order_review_view, self)),
                name="payments_order_review",
            ),
            path(
                "<path:object_id>/resolve/",
                wrap(partial(admin_views.order_resolve_view, self)),
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
        extra_context = {**(extra_context or {}), "can_review": admin_views.can_review(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    # -- actions --
    @admin.action(
        description="Reconcile selected orders now (apply their notifications, expire if due)",
        permissions=["reconcile"],
    )
    def reconcile_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        ids = admin_views.selected_or_refuse(self, request, queryset, "orders")
        if ids is not None:
            counts = orders_reconcile(order_ids=ids)
            self.message_user(request, _describe_reconcile(counts), messages.SUCCESS)

    @admin.action(
        description="Mark open flags of selected orders reviewed…", permissions=["review"]
    )
    def mark_flags_reviewed(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        return admin_views.review_action(
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
            row=_order_csv_row,
        )


def _outcomes(counts: Counter[str]) -> str:
    """The "outcome:<name>" counts of a reconcile or a replay, as "name n, name n"."""
    return ", ".join(
        f"{key.removeprefix('outcome:')} {n}"
        for key, n in sorted(counts.items())
        if key.startswith("outcome:")
    )


def _describe_reconcile(counts: Counter[str]) -> str:
    outcomes = _outcomes(counts)
    notifications = counts.get("notifications", 0)
    text = f"Reconciled {counts.get('orders', 0)} order(s): {notifications} notification(s) applied"
    if outcomes:
        text += f" ({outcomes})"
    return f"{text}; {counts.get('expired', 0)} expired."


def _describe_replay(counts: Counter[str]) -> str:
    outcomes = _outcomes(counts)
    text = f"Replayed {counts.get('examined', 0)} notification(s)"
    return f"{text}: {outcomes}." if outcomes else f"{text}."


@admin.register(Payment)
class PaymentAdmin(PaymentAmounts, ScaleAdmin):
    list_display = ("payment_id", "order", "status", "paid", "source", "paid_at", "created")
    list_filter = (
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

    def search(self, queryset: QuerySet[Payment], term: str) -> QuerySet[Payment]:
        uid = as_uuid(term)
        if uid is None:
            return queryset.filter(order_id__in=_order_ids(reference=term))
        orders = [*_order_ids(transaction=uid), uid]
        return queryset.filter(Q(payment_id=uid) | Q(order_id__in=orders))

    @admin.action(description="Export selected payments as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Payment]) -> HttpResponseBase:
        return csv_response(
            filename="payments",
            header=PAYMENT_CSV,
            rows=self.export_rows(queryset.select_related("order").order_by("-created", "-id")),
            row=_payment_csv_row,
        )


@admin.register(Notification)
class NotificationAdmin(ScaleAdmin):
    list_display = (
        "received_at", "status", "transaction", "outcome", "needs_review", "times_received",
    )  # fmt: skip
    list_filter = (
        "outcome",
        "needs_review",
        NotificationStatusFilter,
        ("received_at", admin.DateFieldListFilter),
    )
    search_fields = ("=transaction", "=payment_id", "=order__reference", "=order__id")
    search_help_text = "An exact transaction, payment id, order id or order reference."
    sortable_by = ("received_at",)
    readonly_fields = (
        "received_at", "last_received_at", "times_received", "remote_addr", "verified",
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

    def search(self, queryset: QuerySet[Notification], term: str) -> QuerySet[Notification]:
        uid = as_uuid(term)
        if uid is None:
            return queryset.filter(order_id__in=_order_ids(reference=term))
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
        ids = admin_views.selected_or_refuse(self, request, queryset, "notifications")
        if ids is not None:
            counts = notifications_replay(notification_ids=ids)
            self.message_user(request, _describe_replay(counts), messages.SUCCESS)

    @admin.action(description="Export selected notifications as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Notification]
    ) -> HttpResponseBase:
        return csv_response(
            filename="notifications",
            header=NOTIFICATION_CSV,
            rows=self.export_rows(queryset.order_by("-received_at", "-id")),
            row=_notification_csv_row,
        )


class FlagReviewInline(ReadOnlyInline):
    model = FlagReview
    fields = ("created", "reviewer_name", "comment")
    readonly_fields = fields
    show_change_link = False


@admin.register(OrderFlag)
class OrderFlagAdmin(ScaleAdmin):
    list_display = ("created", "kind", "order", "detail", "reviewed_at", "reviewed_by")
    list_filter = (FlagOpenFilter, "kind", ("created", admin.DateFieldListFilter))
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

    def search(self, queryset: QuerySet[OrderFlag], term: str) -> QuerySet[OrderFlag]:
        uid = as_uuid(term)
        orders = _order_ids(reference=term)
        if uid is not None:
            orders += [*_order_ids(transaction=uid), uid]
        return queryset.filter(order_id__in=orders)

    def has_review_permission(self, request: HttpRequest) -> bool:
        return admin_views.can_review(request)

    @admin.action(description="Mark selected flags reviewed…", permissions=["review"])
    def mark_reviewed(
        self, request: HttpRequest, queryset: QuerySet[OrderFlag]
    ) -> HttpResponse | None:
        return admin_views.review_action(
            self,
            request,
            queryset,
            action="mark_reviewed",
            what="flags",
            flags_of=lambda ids: OrderFlag.objects.filter(pk__in=ids).order_by("created", "id"),
            cancel_url=reverse("admin:payments_orderflag_changelist"),
        )


@admin.register(FlagReview)
class FlagReviewAdmin(ScaleAdmin):
    """The audit trail of flag reviews: nobody changes or deletes it, superusers included."""

    list_display = ("created", "reviewer_name", "order", "flag", "comment")
    search_fields = ("=order__reference", "=reviewer_name")
    search_help_text = "An exact order reference or reviewer username."
    sortable_by = ("created",)
    list_select_related = ("order", "flag")
    readonly_fields = ("created", "reviewer", "reviewer_name", "order", "flag", "comment")
    fields = readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def search(self, queryset: QuerySet[FlagReview], term: str) -> QuerySet[FlagReview]:
        return queryset.filter(Q(reviewer_name=term) | Q(order_id__in=_order_ids(reference=term)))


@admin.register(OrderResolution)
class OrderResolutionAdmin(RefundAmount, ScaleAdmin):
    """The audit trail of staff decisions on orders: written only by the resolve page
    (payments.services.resolutions); nobody adds, changes or deletes one here."""

    list_display = (
        "created", "action", "order", "refund_amount", "reference", "user_name", "reason",
    )  # fmt: skip
    list_filter = ("action", ("created", admin.DateFieldListFilter))
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

    def search(self, queryset: QuerySet[OrderResolution], term: str) -> QuerySet[OrderResolution]:
        return queryset.filter(
            Q(user_name=term) | Q(reference=term) | Q(order_id__in=_order_ids(reference=term))
        )


@admin.register(RejectedNotification)
class RejectedNotificationAdmin(ReadOnlyAdmin):
    list_display = ("window_start", "reason", "remote_addr", "count", "last_seen")
    list_filter = (RejectionReasonFilter,)
    readonly_fields = ("window_start", "reason", "remote_addr", "count", "last_seen", "sample")
    paginator = EstimatedCountPaginator
    show_full_result_count = False


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("started", "sweep", "status", "dry_run", "counts", "finished")
    list_filter = (SweepFilter, "status", "dry_run")
    readonly_fields = ("sweep", "status", "dry_run", "counts", "error", "started", "finished")
    paginator = EstimatedCountPaginator
    show_full_result_count = False


@admin.register(LedgerCheckpoint)
class LedgerCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("currency", "last_index", "last_date", "updated")
    readonly_fields = ("currency", "last_index", "last_date", "updated")


from payments import admin_webhooks  # noqa: E402,F401
