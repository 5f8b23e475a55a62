"""Template helpers of the review admin (templates/admin/payments/)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def result_count(cl: Any) -> str:
    """A changelist's row count as its paginator knows it: '12', 'about 1,000,000'..."""
    describe = getattr(cl.paginator, "describe_count", None)
    return str(describe()) if describe is not None else f"{cl.result_count:,}"


@register.filter
def count_is_exact(cl: Any) -> bool:
    return not getattr(cl.paginator, "approximate", False)
