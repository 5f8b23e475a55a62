"""Admin of the sandbox gateway: accounts, orders with their payments, the ledger, IPNs.

Everything but the accounts is read-only: the sandbox's state changes only
through its API, its payment page, sandbox_pay and the IPN tasks. An account's
secret is write-only: shown masked, never in a page's source.

The sandbox plays the gateway of every shop, so all of it is for superusers
only (a shop's staff see their shop's orders in the payments admin).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from payments import money
from payments.gateway import signing
from sandbox import currencies, services
from sandbox.models import (
    IpnAttempt,
    IpnDelivery,
    LedgerEntry,
    SandboxAccount,
    SandboxOrder,
    SandboxPayment,
)


class SuperusersOnlyAdmin(admin.ModelAdmin):
    """Superusers only, whatever permissions a staff user holds: every shop's gateway side."""

    @staticmethod
    def _superuser(request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._superuser(request) and super().has_delete_permission(request, obj)


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SandboxAccountForm(forms.ModelForm):
    """The secret is write-only: typed in, checked, never rendered back, not even on an error."""

    secret = forms.CharField(
        label="New secret",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Base64, as the gateway issues it. Empty keeps the current secret.",
    )

    class Meta:
        model = SandboxAccount
        fields = ["login", "api_key", "secret"]

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data["secret"]
        if not secret:
            if not self.instance.secret:
                raise forms.ValidationError("An account needs a secret.")
            return self.instance.secret
        if not signing.secret_valid(secret):
            raise forms.ValidationError("The secret must be base64, as the gateway issues it.")
        return secret


@admin.register(SandboxAccount)
class SandboxAccountAdmin(SuperusersOnlyAdmin):
    form = SandboxAccountForm
    list_display = ["login", "api_key", "last_nonce", "last_login", "created"]
    search_fields = ["login", "api_key"]
    readonly_fields = ["current_secret", "public_id", "last_nonce", "last_login", "created"]
    fields = [
        "login",
        "api_key",
        "current_secret",
        "secret",
        "public_id",
        "last_nonce",
        "last_login",
        "created",
    ]

    @admin.display(description="secret")
    def current_secret(self, account: SandboxAccount) -> str:
        """Enough to tell two secrets apart, not to sign with one."""
        if not account.secret:
            return "-"
        return f"{account.secret[:4]}… ({len(account.secret)} characters)"


class PaymentInline(ReadOnlyMixin, admin.TabularInline):
    model = SandboxPayment
    extra = 0
    readonly_fields = fields = (
        "payment_id",
        "status",
        "method",
        "amount_int",
        "amount_pending",
        "amount_valid",
        "amount_total",
        "paid_at",
        "created",
    )


@admin.register(SandboxOrder)
class SandboxOrderAdmin(ReadOnlyMixin, SuperusersOnlyAdmin):
    list_display = ["transaction", "account", "amount", "btc", "status", "created"]
    list_filter = ["status", "currency", "multipay", "instant_only"]
    search_fields = ["transaction", "description", "data"]
    inlines = [PaymentInline]

    @admin.display(description="amount")
    def amount(self, order: SandboxOrder) -> str:
        return currencies.display(order.amount_int, order.currency)

    @admin.display(description="in BTC")
    def btc(self, order: SandboxOrder) -> str:
        return currencies.display(order.amount_btc_int, money.BTC)


@admin.register(SandboxPayment)
class SandboxPaymentAdmin(ReadOnlyMixin, SuperusersOnlyAdmin):
    list_display = ["payment_id", "order", "status", "method", "amount_int", "created"]
    list_filter = ["status", "method"]
    search_fields = ["payment_id", "order__transaction"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyMixin, SuperusersOnlyAdmin):
    list_display = ["account", "currency", "index", "type", "value_int", "balance_int", "date"]
    list_filter = ["currency", "type"]
    search_fields = ["transaction", "payment__payment_id"]


class AttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = IpnAttempt
    extra = 0
    readonly_fields = fields = ("time", "ok", "http_status", "error", "reply")


@admin.register(IpnDelivery)
class IpnDeliveryAdmin(ReadOnlyMixin, SuperusersOnlyAdmin):
    list_display = ["id", "status", "payment", "url", "attempts", "delivered_at", "next_attempt_at"]
    list_filter = ["status", ("delivered_at", admin.EmptyFieldListFilter)]
    search_fields = ["payment__payment_id", "order__transaction", "url"]
    inlines = [AttemptInline]
    actions = ["send_now"]

    @admin.action(description="Send the selected IPNs now (unless acknowledged)")
    def send_now(self, request: HttpRequest, queryset: QuerySet[IpnDelivery]) -> None:
        sent = sum(services.ipn_delivery_resend(delivery_id=d.pk) for d in queryset)
        self.message_user(request, f"{sent} IPN(s) queued.", messages.SUCCESS)
