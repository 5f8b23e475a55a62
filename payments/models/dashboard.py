"""The admin dashboard's summary: the figures that would need a scan, computed off the request."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class DashboardSummary(models.Model):
    """One row (pk 1): what dashboard_summary_refresh (payments.services.dashboard_summary)
    last found.

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
    """

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
        return f"dashboard summary of {self.computed_at:%Y-%m-%d %H:%M:%S}"
