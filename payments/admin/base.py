"""Base classes and mixins of the review admin: read-only, fast at millions of rows, per shop.

- `ShopScopedAdmin`: what a staff user sees and acts on is their shops' rows
  only (`shop_path` leads from the model to its shop); another shop's object
  is a 404. `SuperuserOnlyAdmin`: service-wide records, for superusers only.
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
from django.core.exceptions import PermissionDenied
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import Http404, HttpRequest

from payments.admin.pagination import EstimatedCountPaginator
from payments.models import Order, OrderResolution, Payment, Shop
from payments.money import BTC, display
from payments.shops import scope_to_shops, shop_ids_for_user

SEARCH_MATCHES = 100  # orders a reference or transaction may stand for in a search
# A list scoped to shops through its order (payments, flags...) counts at most this
# many rows: each is a join, so a count to EstimatedCountPaginator.cap would cost
# ten times as much (and grow with the shop until it reached the cap).
JOINED_SCOPE_COUNT_CAP = 1000
_SHOP_IDS = "_payments_shop_ids"  # where a request keeps its user's shops once asked


# --- shops: who sees what --------------------------------------------------------------


def request_shop_ids(request: HttpRequest) -> list[int] | None:
    """The ids of the shops the request's user works for; None for a superuser (every shop).

    Asked once per request (a changelist scopes several querysets).
    """
    if not hasattr(request, _SHOP_IDS):
        setattr(request, _SHOP_IDS, shop_ids_for_user(user=request.user))
    found: list[int] | None = getattr(request, _SHOP_IDS)
    return found


def visible_orders(request: HttpRequest) -> QuerySet[Order]:
    """The orders the request's user may see (a search's orders come from these)."""
    return scope_to_shops(Order.objects.all(), shop_ids=request_shop_ids(request), path="shop")


def visible_shops(request: HttpRequest) -> QuerySet[Shop]:
    """The shops the request's user works for (every shop for a superuser), by name."""
    return scope_to_shops(Shop.objects.all(), shop_ids=request_shop_ids(request), path="pk")


def sees_several_shops(request: HttpRequest) -> bool:
    """Whether the user sees more than one shop (then lists say whose each row is)."""
    shop_ids = request_shop_ids(request)
    if shop_ids is not None:
        return len(shop_ids) > 1
    return Shop.objects.all()[:2].count() > 1


def is_superuser(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


class ShopScopedAdmin(admin.ModelAdmin):
    """A model admin whose every read is limited to the user's shops: superusers see all.

    `shop_path` is the lookup from the model to its shop ("shop", "order__shop",
    "pk" for the shops themselves). Scoping get_queryset covers the changelist,
    its search, filters and actions (CSV export included), the change page, the
    pages built on get_object, and autocomplete (Django asks the target admin's
    get_queryset). An object outside the user's shops is a 404, exactly as one
    that does not exist (never a 403 that would confirm it exists); a user with
    no permission on the model gets the 403 Django gives, whatever the object.
    A form's foreign key to Shop offers the user's shops only.
    """

    shop_path = "shop"
    shop_column = False  # a "shop" column for whoever sees several shops

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = super().get_list_display(request)
        if self.shop_column and sees_several_shops(request):
            return (*columns[:1], "shop", *columns[1:])
        return columns

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return scope_to_shops(
            super().get_queryset(request), shop_ids=request_shop_ids(request), path=self.shop_path
        )

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Any:
        """Lists scoped to some shops through a join count JOINED_SCOPE_COUNT_CAP rows at
        most, and serve the pages those hold (a date filter reaches older rows)."""
        paginator = super().get_paginator(
            request, queryset, per_page, orphans, allow_empty_first_page
        )
        scoped = request_shop_ids(request) is not None or "shop" in request.GET
        if isinstance(paginator, EstimatedCountPaginator) and scoped and "__" in self.shop_path:
            paginator.cap = JOINED_SCOPE_COUNT_CAP
            paginator.max_pages = max(1, JOINED_SCOPE_COUNT_CAP // per_page)
        return paginator

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        found = super().get_object(request, object_id, from_field)
        if found is None:  # absent, or another shop's: the same answer
            raise Http404(f"No {self.opts.verbose_name} with this id.")
        return found

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.related_model is Shop:
            kwargs.setdefault("queryset", visible_shops(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SuperuserOnlyAdmin(admin.ModelAdmin):
    """Records of the whole service, not of one shop (rejected requests to the IPN
    endpoint, reconciliation runs, the ledger's checkpoints, shop memberships):
    superusers only, whatever permissions a staff user holds."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request) and super().has_delete_permission(request, obj)


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
        """Exact lookups only, each on an index (`search`): no LIKE scan, no duplicates.

        `orders` are the orders the user may see: a reference or transaction is
        looked up among them, so that another shop's orders neither match nor
        crowd out the user's own (SEARCH_MATCHES).
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        return self.search(queryset, term, visible_orders(request)), False

    def search(self, queryset: QuerySet[Any], term: str, orders: QuerySet[Order]) -> QuerySet[Any]:
        raise NotImplementedError


def as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


def order_ids(orders: QuerySet[Order], **lookup: Any) -> list[uuid.UUID]:
    """The ids of at most SEARCH_MATCHES of `orders` matching `lookup`: a search's orders."""
    return list(orders.filter(**lookup).values_list("pk", flat=True)[:SEARCH_MATCHES])


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
