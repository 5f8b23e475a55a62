"""The shops themselves: a shop and its gateway account, its API tokens, its staff.

- Shops: superusers add and change them; a shop's staff (with the view
  permission) see their own shops. The gateway secret is write-only: typed
  into a password field, sealed (payments.secret_box) and never shown back,
  not even on a form with an error; the page says only whether one is set.
  The default shop's gateway account is the environment's, not editable here.
  No shop is deleted here (its orders are kept): clear "active" instead.
- API tokens: a shop's staff see their shops' tokens (name, prefix, created,
  last used, revoked); with the add / change permissions on tokens ("Shop
  token managers") they make one (its key is shown once, on the next page,
  and never stored) or revoke some.
- Memberships (who works for which shop): superusers only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from payments.admin.actions import run_on_selected
from payments.admin.base import ShopScopedAdmin, SuperuserOnlyAdmin, is_superuser
from payments.admin.filters import ShopFilter
from payments.conf import payments_settings
from payments.gateway.signing import secret_valid
from payments.models import ApiToken, Shop, ShopMembership
from payments.secret_box import seal
from payments.services.shops import (
    api_token_create,
    api_token_revoke,
    gateway_key_check,
    gateway_secret_env_check,
    return_hosts_check,
    underpaid_tolerance_check,
)

GATEWAY_FIELDS = ("gateway_key", "gateway_secret", "gateway_secret_env")


class ShopForm(forms.ModelForm):
    """A shop's settings; its gateway secret write-only (sealed, never rendered back)."""

    gateway_secret = forms.CharField(
        label="New gateway secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Base64, as the gateway gives it; stored sealed and never shown again. "
        "Empty keeps the current one.",
    )
    return_hosts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 50}),
        help_text="Where the payer may be sent back to, one a line: shop.example or "
        "https://shop.example:8443.",
    )

    class Meta:
        model = Shop
        fields = [
            "name", "active", "gateway_key", "gateway_secret", "gateway_secret_env",
            "return_hosts", "order_ttl_seconds", "underpaid_tolerance",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "return_hosts" in self.fields:
            self.initial["return_hosts"] = "\n".join(self.instance.return_hosts or [])

    def clean_gateway_secret(self) -> str:
        secret: str = self.cleaned_data.get("gateway_secret") or ""
        if secret and not secret_valid(secret):
            raise forms.ValidationError("The secret must be base64, as the gateway gives it.")
        return secret

    def clean_return_hosts(self) -> list[str]:
        text: str = self.cleaned_data.get("return_hosts") or ""
        entries = [line.strip() for line in text.splitlines() if line.strip()]
        return _checked(return_hosts_check, entries)

    def clean_underpaid_tolerance(self) -> Decimal | None:
        return _checked(underpaid_tolerance_check, self.cleaned_data.get("underpaid_tolerance"))

    def clean_gateway_secret_env(self) -> str:
        return _checked(gateway_secret_env_check, self.cleaned_data.get("gateway_secret_env") or "")

    def clean_gateway_key(self) -> uuid.UUID | None:
        key: uuid.UUID | None = self.cleaned_data.get("gateway_key")
        return key if key is None else _checked(gateway_key_check, key)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.is_default:  # its gateway account is the environment's
            return data
        secret, env = data.get("gateway_secret"), data.get("gateway_secret_env")
        if "gateway_key" in data and not data["gateway_key"]:
            self.add_error("gateway_key", "A shop needs its gateway API key id.")
        if secret and env:
            raise forms.ValidationError(
                "Give the gateway secret or the environment variable holding it, not both."
            )
        if not (secret or env or self.instance.gateway_secret_sealed):
            raise forms.ValidationError(
                "A shop needs its gateway secret: type it, or name the environment variable "
                "holding it."
            )
        return data

    def save(self, commit: bool = True) -> Shop:
        shop: Shop = super().save(commit=False)
        secret = self.cleaned_data.get("gateway_secret")
        if shop.is_default:
            pass  # its gateway account is the environment's: nothing stored
        elif secret:
            shop.gateway_secret_sealed = seal(secret)
        elif shop.gateway_secret_env:
            shop.gateway_secret_sealed = ""  # read from the environment: no other copy kept
        if commit:
            shop.save()
        return shop


T = TypeVar("T")


def _checked(check: Callable[[T], None], value: T) -> T:
    """`value` once `check` (a services.shops check) passed; its ValueError as a form error."""
    try:
        check(value)
    except ValueError as exc:
        raise forms.ValidationError(str(exc).capitalize() + ".") from exc
    return value


@admin.register(Shop)
class ShopAdmin(ShopScopedAdmin):
    shop_path = "pk"
    form = ShopForm
    list_display = ("name", "active", "is_default", "gateway_key", "secret", "created", "links")
    list_filter = ("active",)
    search_fields = ("name",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = ["name", "active", "gateway_key", "secret", "gateway_secret"]
        fields += ["gateway_secret_env", "return_hosts", "order_ttl_seconds"]
        fields += ["underpaid_tolerance", "is_default", "created", "links"]
        hidden = set(GATEWAY_FIELDS) if obj is not None and obj.is_default else set()
        if not self.has_change_permission(request, obj):  # viewing: nothing to type
            hidden.add("gateway_secret")
        return tuple(name for name in fields if name not in hidden)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["secret", "is_default", "created", "links"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Shop | None = None) -> bool:
        return is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Shop | None = None) -> bool:
        return False  # its orders are kept: disable it (clear "active") instead

    @admin.display(description="gateway secret")
    def secret(self, shop: Shop) -> str:
        """Whether a secret is set, and where it is read from: never the secret."""
        if shop.is_default:
            state = "set" if payments_settings.GATEWAY_API_SECRET else "not set"
            return f"{state} (the environment's GATEWAY_API_SECRET)"
        if shop.gateway_secret_env:
            state = "set" if os.environ.get(shop.gateway_secret_env) else "not set"
            return f"{state} (the environment variable {shop.gateway_secret_env})"
        return "set (sealed)" if shop.gateway_secret_sealed else "not set"

    @admin.display(description="see")
    def links(self, shop: Shop) -> str:
        if shop.pk is None:
            return "-"
        return format_html(
            '<a href="{}?shop={}">orders</a> · <a href="{}?shop={}">dashboard</a> · '
            '<a href="{}?shop={}">API tokens</a>',
            reverse("admin:payments_order_changelist"), shop.pk,
            reverse("admin:payments_dashboard"), shop.pk,
            reverse("admin:payments_apitoken_changelist"), shop.pk,
        )  # fmt: skip


@admin.register(ApiToken)
class ApiTokenAdmin(ShopScopedAdmin):
    shop_path = "shop"
    list_display = (
        "name",
        "shop",
        "prefix_shown",
        "read_only",
        "created",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (ShopFilter, "read_only", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "=prefix")
    autocomplete_fields = ("shop",)
    list_select_related = ("shop",)
    actions = ("revoke_selected",)
    SHOWN = ("shop", "name", "prefix_shown", "read_only", "created", "last_used_at", "revoked_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("shop", "name", "read_only") if obj is None else self.SHOWN

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else list(self.SHOWN)

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        """A token is never edited, only revoked (the action): its page is for viewing."""
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # revoke instead: the orders it made still name it

    @admin.display(description="prefix")
    def prefix_shown(self, token: ApiToken) -> str:
        return f"{token.prefix}…" if token.prefix else "-"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        """Made by the service, which returns the key: kept on the object for the next page only."""
        token, key = api_token_create(shop=obj.shop, name=obj.name, read_only=obj.read_only)
        obj.pk = token.pk
        obj.refresh_from_db()
        obj.key_shown_once = key  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The new key, shown this once (never stored, never cached by the browser)."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API token made",
            "opts": self.opts,
            "token": obj,
            "key": getattr(obj, "key_shown_once", ""),
        }
        response = TemplateResponse(request, "admin/payments/apitoken/made.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected API tokens", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        def revoke(ids: list[int]) -> str:
            tokens = list(ApiToken.objects.filter(pk__in=ids, revoked_at__isnull=True))
            for token in tokens:
                api_token_revoke(token=token)
            return f"{len(tokens)} API token(s) revoked."

        run_on_selected(self, request, queryset, what="API tokens", run=revoke)


@admin.register(ShopMembership)
class ShopMembershipAdmin(SuperuserOnlyAdmin):
    """Who works for which shop: a staff user sees and acts on these shops' orders only."""

    shop_path = "shop"  # for ShopFilter
    list_display = ("user", "shop", "created")
    list_filter = (ShopFilter,)
    search_fields = ("user__username", "shop__name")
    autocomplete_fields = ("user", "shop")
    list_select_related = ("user", "shop")
    fields = ("user", "shop", "created")
    readonly_fields = ("created",)
