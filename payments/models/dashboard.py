"""The admin dashboard's summary: the figures that would need a scan, computed off the request."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from payments.models.shops import Shop


class DashboardSummary(models.Model):
    """What dashboard_summary_refresh (payments.services.dashboard_summary) last found:
    one row for every shop together (`shop` empty) and one per shop with anything to count.

    Orders per status, revenue per day and currency, flag and notification
    counts cost time proportional to the tables (a million orders, millions of
    notifications), so the dashboard reads them from here and asks for a
    refresh in the background when the row is older than a minute. Money is
    in integers of the smallest unit with its currency, as everywhere.

    - `orders_by_status`: {"paid": 123, ...}
    - `revenue`: [{"day": "2026-01-02", "currency": "BTC", "amount_int": 1, "payments": 1}, ...]
      over `revenue_days` days, paid payments by the gateway's payment date
    - `open_flags_by_kind`: {"late": 2, ...}
    - `figures`: other counts ({"flagged_orders": ..., "notifications_24h": ...,
      "notifications_late_24h": ..., "refunds": refunds recorded per currency over
      `revenue_days` days})

    A shop's staff see the sum of their shops' rows; a shop without a row had
    nothing to count when the figures were computed.
    """

    # None: every shop together (superusers' dashboard, the metrics endpoint).
    shop = models.OneToOneField(
        Shop, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    computed_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    revenue_days = models.PositiveSmallIntegerField(default=30)
    orders_by_status = models.JSONField(default=dict)
    revenue = models.JSONField(default=list)
    open_flags_by_kind = models.JSONField(default=dict)
    figures = models.JSONField(default=dict)

    class Meta:
        verbose_name = "dashboard summary"
        verbose_name_plural = "dashboard summary"

    def __str__(self) -> str:
        of = self.shop or "every shop"
        return f"dashboard summary of {of} at {self.computed_at:%Y-%m-%d %H:%M:%S}"
