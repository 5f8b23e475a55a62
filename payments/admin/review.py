"""Reviewing flags: the confirmation page, /admin/payments/order/<id>/review/, and the actions.

Reviewers only (the change permission on flags, REVIEW_PERMISSION). Thin:
the review itself is payments.services.review.flags_mark_reviewed; the page
is templates/admin/payments/review_flags.html.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from payments.admin.actions import selected_or_refuse
from payments.models import OrderFlag
from payments.services.review import MAX_SELECTED, flags_mark_reviewed

REVIEW_PERMISSION = "payments.change_orderflag"


def can_review(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(REVIEW_PERMISSION))


class ReviewForm(forms.Form):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        max_length=2000,
        help_text="What you checked and decided. Kept in the audit trail with your name "
        "and the time.",
    )


def review_flags(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    flags: QuerySet[OrderFlag],
    *,
    hidden: Sequence[tuple[str, str]] = (),
    cancel_url: str,
) -> HttpResponse | None:
    """The confirmation page of a review, and the review itself once confirmed.

    Returns None after marking (the caller redirects), or the page to show.
    `flags` are the open flags on offer (at most MAX_SELECTED); the person may
    untick some. `hidden` carries an admin action's fields through the page.
    """
    if not can_review(request):
        raise PermissionDenied
    offered = _open_flags_offered(model_admin, request, flags)
    if offered is None:
        return None
    form = ReviewForm(request.POST if "apply" in request.POST else None)
    chosen_ids: set[str] = {str(flag.pk) for flag in offered}
    if "apply" in request.POST:
        chosen_ids &= set(request.POST.getlist("flag"))
        if _mark_reviewed(model_admin, request, form, chosen_ids):
            return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Mark flags reviewed",
        "opts": model_admin.opts,
        "flags": offered,
        "chosen": chosen_ids,
        "form": form,
        "hidden": hidden,
        "cancel_url": cancel_url,
    }
    return TemplateResponse(request, "admin/payments/review_flags.html", context)


def _open_flags_offered(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, flags: QuerySet[OrderFlag]
) -> list[OrderFlag] | None:
    """The open ones of `flags`, or None (and a message) when there are none or too many."""
    open_flags = flags.filter(reviewed_at__isnull=True).select_related("order")
    offered = list(open_flags[: MAX_SELECTED + 1])
    if len(offered) > MAX_SELECTED:
        model_admin.message_user(
            request,
            f"More than {MAX_SELECTED} open flags chosen: review fewer at once.",
            messages.ERROR,
        )
        return None
    if not offered:
        model_admin.message_user(request, "No open flag to review.", messages.WARNING)
        return None
    return offered


def _mark_reviewed(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, form: ReviewForm, chosen: set[str]
) -> bool:
    """Mark the chosen flags reviewed; False (the errors on the form) when it is not valid."""
    if not chosen:
        form.add_error(None, "Tick at least one flag.")
    if not form.is_valid():
        return False
    marked = flags_mark_reviewed(
        flag_ids=[int(pk) for pk in chosen],
        user=request.user,
        comment=form.cleaned_data["comment"],
    )
    model_admin.message_user(request, f"{len(marked)} flag(s) marked reviewed.", messages.SUCCESS)
    return True


def order_review_view(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, object_id: str
) -> HttpResponse:
    """/admin/payments/order/<id>/review/: review the open flags of one order.

    Another shop's order is a 404, as one that does not exist (OrderAdmin.get_object).
    """
    order = model_admin.get_object(request, object_id)
    if order is None:
        raise Http404("No order with this id.")
    if not model_admin.has_view_permission(request, order):
        raise PermissionDenied
    change_url = reverse("admin:payments_order_change", args=[order.pk])
    response = review_flags(
        model_admin,
        request,
        OrderFlag.objects.filter(order=order).order_by("created", "id"),
        cancel_url=change_url,
    )
    return response or HttpResponseRedirect(change_url)


def review_action(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    what: str,
    flags_of: Callable[[list[Any]], QuerySet[OrderFlag]],
    cancel_url: str,
) -> HttpResponse | None:
    """An admin action that reviews the open flags of the selected rows (at most MAX_SELECTED)."""
    ids = selected_or_refuse(model_admin, request, queryset, what)
    if ids is None:
        return None
    return review_flags(
        model_admin,
        request,
        flags_of(ids),
        hidden=action_hidden_fields(request, action),
        cancel_url=cancel_url,
    )


def action_hidden_fields(request: HttpRequest, action: str) -> list[tuple[str, str]]:
    """An admin action's POST fields, to carry through its confirmation page."""
    keep = ("select_across", helpers.ACTION_CHECKBOX_NAME)
    carried = [(name, value) for name in keep for value in request.POST.getlist(name)]
    return [("action", action), *carried]
