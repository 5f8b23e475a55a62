"""Base classes and mixins of the review admin: read-only, fast at millions of rows.

- `ReadOnlyInline`, `ReadOnlyAdmin`: nobody adds, changes or deletes here;
  money and gateway fields change only through the services.
- `ScaleAdmin`: a read-only changelist with no full COUNT(*)
  (EstimatedCountPaginator), no facet counts and searches that are exact
  index lookups (`search`, with `as_uuid` and `order_ids`).
- `PaymentAmounts`, `RefundAmount`: money columns shown in more than one admin.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from payments.admin.pagination import EstimatedCountPaginator
from payments.models import Order, OrderResolution, Payment
from payments.money import BTC, display

SEARCH_MATCHES = 100  # orders a reference or transaction may stand for in a search


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


def as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


def order_ids(**lookup: Any) -> list[uuid.UUID]:
    """The ids of at most SEARCH_MATCHES orders matching `lookup`: a search's orders."""
    return list(Order.objects.filter(**lookup).values_list("pk", flat=True)[:SEARCH_MATCHES])


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


class RefundAmount:
    """The `amount` column of a resolution: a refund's amount in its currency, else "-"."""

    @admin.display(description="amount")
    def refund_amount(self, resolution: OrderResolution) -> str:
        if resolution.amount_int is None:
            return "-"
        return display(resolution.amount_int, resolution.currency)
