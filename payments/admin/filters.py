"""The review admin's list filters: fixed choices on indexed columns.

No filter runs a SELECT DISTINCT over a whole table to find its choices, and
each filters on a column with an index. `ShopFilter` is on every changelist
of a shop's rows, shown to whoever sees more than one shop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from payments import money
from payments.admin.base import visible_shops
from payments.choices import RECORDED_REJECTIONS, IpnStatus, Sweep
from payments.models import ShopEventDelivery
from payments.shops import in_shops

SHOPS_LISTED = 50  # shops a filter or the dashboard lists; any other is reached from its page


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter on one indexed column with choices known in advance (no DISTINCT scan)."""

    field_name = ""
    options: Sequence[tuple[str, str]] = ()

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, str]]:
        return self.options

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in {key for key, _ in self.options}:
            return queryset.filter(**{self.field_name: value})
        return queryset


class CurrencyFilter(FixedChoicesFilter):
    title = "currency"
    parameter_name = "currency"
    field_name = "currency"
    options = [(code, code) for code in money.CURRENCIES]


class NotificationStatusFilter(FixedChoicesFilter):
    title = "status"
    parameter_name = "status"
    field_name = "status"
    options = IpnStatus.choices


class RejectionReasonFilter(FixedChoicesFilter):
    title = "reason"
    parameter_name = "reason"
    field_name = "reason"
    options = [(reason.value, reason.label) for reason in RECORDED_REJECTIONS]


class SweepFilter(FixedChoicesFilter):
    title = "sweep"
    parameter_name = "sweep"
    field_name = "sweep"
    options = Sweep.choices


class OrderFlaggedFilter(admin.SimpleListFilter):
    """Orders with a flag nobody has reviewed (Order.open_flags, a partial index)."""

    title = "flagged"
    parameter_name = "flagged"
    prefix = ""  # "order__" for models that reach the order through a foreign key

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes: needs review"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case "yes":
                return queryset.filter(**{f"{self.prefix}open_flags__gt": 0})
            case "no":
                return queryset.filter(**{f"{self.prefix}open_flags": 0})
        return queryset


class PaymentOrderFlaggedFilter(OrderFlaggedFilter):
    prefix = "order__"


class FlagOpenFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Open"), ("no", "Reviewed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case "yes":
                return queryset.filter(reviewed_at__isnull=True)
            case "no":
                return queryset.filter(reviewed_at__isnull=False)
        return queryset


class DeliveryStateFilter(admin.SimpleListFilter):
    """A delivery's state (ShopEventDelivery.State), from its delivered and given-up times and
    its last error."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, str(label)) for value, label in ShopEventDelivery.State.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case ShopEventDelivery.State.DELIVERED:
                return queryset.filter(delivered_at__isnull=False)
            case ShopEventDelivery.State.GIVEN_UP:
                return queryset.filter(delivered_at__isnull=True, given_up_at__isnull=False)
            case ShopEventDelivery.State.FAILING:
                return queryset.filter(delivered_at__isnull=True, given_up_at__isnull=True).exclude(
                    last_error=""
                )
            case ShopEventDelivery.State.PENDING:
                return queryset.filter(
                    delivered_at__isnull=True, given_up_at__isnull=True, last_error=""
                )
        return queryset


class ShopFilter(admin.SimpleListFilter):
    """One of the shops the user sees, on the model admin's `shop_path` (ShopScopedAdmin).

    Hidden from whoever sees one shop only. Lists the first SHOPS_LISTED shops
    by name (and the one chosen); a shop's page in the admin links to its rows
    (`?shop=<id>`), however many shops there are. Another shop's id finds
    nothing: the changelist's queryset is scoped to the user's shops already.
    """

    title = "shop"
    parameter_name = "shop"

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, Any],
        model: type[Model],
        model_admin: Any,
    ) -> None:
        self.path: str = model_admin.shop_path
        super().__init__(request, params, model, model_admin)

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The shops to choose from; none (no filter) for one shop unless one is asked for:
        a filter without choices would be dropped, and the shop asked for ignored."""
        shops = list(visible_shops(request).values_list("pk", "name")[: SHOPS_LISTED + 1])
        chosen = self.shop_id()
        if len(shops) < 2 and chosen is None:
            return []
        listed = [(str(pk), name) for pk, name in shops[:SHOPS_LISTED]]
        if chosen is not None and str(chosen) not in dict(listed):
            found = visible_shops(request).filter(pk=chosen).values_list("pk", "name")
            listed += [(str(pk), name) for pk, name in found]
        return listed

    def shop_id(self) -> int | None:
        value = self.value()
        if not value:
            return None
        try:
            return int(value)
        except ValueError as exc:
            raise IncorrectLookupParameters(f"shop: {value!r} is not a shop's id") from exc

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        chosen = self.shop_id()
        return queryset if chosen is None else queryset.filter(in_shops(self.path, [chosen]))
