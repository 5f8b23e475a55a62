"""The review admin's list filters: fixed choices on indexed columns.

No filter runs a SELECT DISTINCT over a whole table to find its choices, and
each filters on a column with an index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from payments import money
from payments.choices import RECORDED_REJECTIONS, IpnStatus, Sweep
from payments.models import ShopEvent


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


class ShopEventStateFilter(admin.SimpleListFilter):
    """A shop event's state (ShopEvent.State), from its delivered and given-up times."""

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
