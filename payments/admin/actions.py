"""What the admin actions share: the bound on selected rows and the messages they leave."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from payments.services.review import MAX_SELECTED


def run_on_selected(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    what: str,
    run: Callable[[list[Any]], str],
) -> None:
    """Run an action on the selected rows' ids and show what it says it did.

    `run` takes the ids (at most MAX_SELECTED; more are refused with a message)
    and returns the text of the success message.
    """
    ids = selected_or_refuse(model_admin, request, queryset, what)
    if ids is not None:
        model_admin.message_user(request, run(ids), messages.SUCCESS)


def selected_or_refuse(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any], what: str
) -> list[Any] | None:
    """The selected rows' ids for an action, or None (and a message) when there are too many."""
    ids = selected_ids(queryset)
    if ids is None:
        model_admin.message_user(
            request, f"Select at most {MAX_SELECTED} {what} for this action.", messages.ERROR
        )
    return ids


def selected_ids(queryset: QuerySet[Any], limit: int = MAX_SELECTED) -> list[Any] | None:
    """The primary keys of an action's rows, or None when there are more than `limit`."""
    ids = list(queryset.order_by().values_list("pk", flat=True)[: limit + 1])
    return None if len(ids) > limit else ids


def _outcomes(counts: Counter[str]) -> str:
    """The "outcome:<name>" counts of a reconcile or a replay, as "name n, name n"."""
    return ", ".join(
        f"{key.removeprefix('outcome:')} {n}"
        for key, n in sorted(counts.items())
        if key.startswith("outcome:")
    )


def describe_reconcile(counts: Counter[str]) -> str:
    outcomes = _outcomes(counts)
    notifications = counts.get("notifications", 0)
    text = f"Reconciled {counts.get('orders', 0)} order(s): {notifications} notification(s) applied"
    if outcomes:
        text += f" ({outcomes})"
    return f"{text}; {counts.get('expired', 0)} expired."


def describe_replay(counts: Counter[str]) -> str:
    outcomes = _outcomes(counts)
    text = f"Replayed {counts.get('examined', 0)} notification(s)"
    return f"{text}: {outcomes}." if outcomes else f"{text}."
