"""The dashboard's figures: reads only, each an index lookup or a bounded number of rows.

The page that shows them is payments.admin.dashboard; the summary row they
mostly read is written by payments.services.dashboard_summary. So that the
dashboard costs the same at a million orders as at ten thousand:

- figures that would scan a table (orders per status, revenue, refunds, open
  flags, late notifications) come from the DashboardSummary row;
- counts that may be large are capped (payments.counting: "10,000+").
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock

from django.db.models import Max, Sum
from django.utils import timezone

from payments import money
from payments.choices import Sweep
from payments.counting import Capped, count_upto
from payments.exceptions import UnknownCurrency
from payments.models import (
    DashboardSummary,
    Notification,
    OrderFlag,
    ReconciliationRun,
    RejectedNotification,
)
from payments.states import OrderStatus

SUMMARY_PK = 1  # the one DashboardSummary row
REVENUE_DAYS = 30
SWEEP_NAMES = tuple(Sweep)
FLAG_QUEUE_LENGTH = 20
# Flags of orders a person resolves (accepts as paid, voids, cancels, refunds), not only reviews.
EXCEPTIONAL_KINDS = (
    OrderFlag.Kind.UNDERPAID,
    OrderFlag.Kind.OVERPAID,
    OrderFlag.Kind.QUOTE_MISSING,
    OrderFlag.Kind.QUOTE_EXPIRED,
    OrderFlag.Kind.INVALID_NOTIFICATION,
)


def revenue_first_day(now: datetime, days: int = REVENUE_DAYS) -> datetime:
    """Midnight (in the current time zone) starting the revenue window of `days` days."""
    first = timezone.localtime(now).date() - timedelta(days=days - 1)
    return timezone.make_aware(datetime.combine(first, clock.min))


def dashboard_summary_get() -> DashboardSummary | None:
    return DashboardSummary.objects.filter(pk=SUMMARY_PK).first()


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int


def orders_by_status(summary: DashboardSummary) -> list[StatusCount]:
    """Every status in the state table's order, with the summary's count (0 when none)."""
    counts = summary.orders_by_status or {}
    return [
        StatusCount(str(value), str(label), int(counts.get(value, 0)))
        for value, label in OrderStatus.choices
    ]


def flag_queue(
    limit: int = FLAG_QUEUE_LENGTH, *, kinds: Collection[str] | None = None
) -> list[OrderFlag]:
    """The newest open flags (of `kinds`, or all) with their orders.

    An index scan: the partial index flag_open_created, or flag_open_kind for some kinds.
    """
    open_flags = OrderFlag.objects.filter(reviewed_at__isnull=True)
    if kinds is not None:
        open_flags = open_flags.filter(kind__in=kinds)
    return list(open_flags.select_related("order").order_by("-created", "-id")[:limit])


def exceptional_open(summary: DashboardSummary) -> int:
    """Open flags of EXCEPTIONAL_KINDS, from the summary's count per kind."""
    counts = summary.open_flags_by_kind or {}
    return sum(int(counts.get(kind, 0)) for kind in EXCEPTIONAL_KINDS)


def open_flags_by_kind(summary: DashboardSummary) -> list[tuple[str, int]]:
    """The summary's open flags per kind, most first, each kind by its label."""
    labelled = (
        (OrderFlag.Kind(kind).label if kind in OrderFlag.Kind.values else kind, n)
        for kind, n in summary.open_flags_by_kind.items()
    )
    return sorted(labelled, key=lambda pair: -pair[1])


@dataclass(frozen=True)
class NotificationHealth:
    last_received: datetime | None
    rejected_last_hour: int
    waiting: Capped  # stored, never applied or failed: the apply_pending sweep's work
    needs_review: Capped
    received_24h: int | None  # from the summary
    late_24h: int | None  # from the summary


def notification_health(
    summary: DashboardSummary | None, *, now: datetime | None = None
) -> NotificationHealth:
    now = now or timezone.now()
    last = Notification.objects.aggregate(last=Max("received_at"))["last"]
    rejected = RejectedNotification.objects.filter(
        window_start__gte=now - timedelta(hours=1)
    ).aggregate(n=Sum("count"))["n"]
    figures = summary.figures if summary is not None else {}
    return NotificationHealth(
        last_received=last,
        rejected_last_hour=int(rejected or 0),
        waiting=count_upto(
            Notification.objects.filter(
                outcome__in=(Notification.Outcome.PENDING, Notification.Outcome.ERROR)
            )
        ),
        needs_review=count_upto(Notification.objects.filter(needs_review=True)),
        received_24h=figures.get("notifications_24h"),
        late_24h=figures.get("notifications_late_24h"),
    )


def last_runs() -> list[tuple[str, ReconciliationRun | None]]:
    """The last run of each sweep (the index run_sweep_started), in the order beat runs them."""
    return [
        (
            name,
            ReconciliationRun.objects.filter(sweep=name).order_by("-started", "-id").first(),
        )
        for name in SWEEP_NAMES
    ]


# --- the revenue chart: inline SVG, its geometry computed here, no JavaScript ----------


@dataclass(frozen=True)
class Bar:
    day: date
    amount_int: int
    payments: int
    x: int
    y: int
    height: int
    amount: str  # "1.23000000 BTC"
    label: str  # "2026-01-02: 1.23000000 BTC (4 payments)"


@dataclass(frozen=True)
class RevenueChart:
    currency: str
    total: str
    payments: int
    peak: str
    bars: list[Bar]
    ticks: list[tuple[int, str]] = field(default_factory=list)  # (x, "01-02")
    width: int = 0
    height: int = 0
    plot_top: int = 0
    plot_bottom: int = 0


BAR_WIDTH = 14
BAR_GAP = 4
PLOT_HEIGHT = 100
PLOT_TOP = 8
LEFT = 4

DayRevenue = dict[date, tuple[int, int]]  # day -> (amount_int, payments)


def revenue_charts(summary: DashboardSummary) -> list[RevenueChart]:
    """One bar chart per currency over the summary's days (BTC first)."""
    days = summary.revenue_days or 30
    first = timezone.localtime(revenue_first_day(summary.computed_at, days)).date()
    all_days = [first + timedelta(days=i) for i in range(days)]
    per_currency = _revenue_per_currency(summary)
    return [
        _revenue_chart(currency, per_currency[currency], all_days)
        for currency in sorted(per_currency, key=lambda c: (c != money.BTC, c))
    ]


def _revenue_per_currency(summary: DashboardSummary) -> dict[str, DayRevenue]:
    per_currency: dict[str, DayRevenue] = {}
    for row in summary.revenue or []:
        day = date.fromisoformat(row["day"])
        per_currency.setdefault(row["currency"], {})[day] = (
            int(row["amount_int"]),
            int(row["payments"]),
        )
    return per_currency


def _revenue_chart(currency: str, values: DayRevenue, all_days: list[date]) -> RevenueChart:
    peak = max(amount for amount, _ in values.values()) or 1
    bars = [
        _bar(i, day, *values.get(day, (0, 0)), currency=currency, peak=peak)
        for i, day in enumerate(all_days)
    ]
    return RevenueChart(
        currency=currency,
        total=_money(sum(amount for amount, _ in values.values()), currency),
        payments=sum(n for _, n in values.values()),
        peak=_money(peak, currency),
        bars=bars,
        ticks=_ticks(bars),
        width=LEFT * 2 + len(all_days) * (BAR_WIDTH + BAR_GAP),
        height=PLOT_TOP + PLOT_HEIGHT + 18,
        plot_top=PLOT_TOP,
        plot_bottom=PLOT_TOP + PLOT_HEIGHT,
    )


def _bar(i: int, day: date, amount: int, payments: int, *, currency: str, peak: int) -> Bar:
    """The i-th day's bar; its height in integer arithmetic, relative to the peak day."""
    height = amount * PLOT_HEIGHT // peak
    if amount and not height:
        height = 1  # a tiny day is still visible
    shown = _money(amount, currency)
    return Bar(
        day=day,
        amount_int=amount,
        payments=payments,
        x=LEFT + i * (BAR_WIDTH + BAR_GAP),
        y=PLOT_TOP + PLOT_HEIGHT - height,
        height=height,
        amount=shown,
        label=f"{day.isoformat()}: {shown} ({payments} payment{'' if payments == 1 else 's'})",
    )


def _ticks(bars: list[Bar]) -> list[tuple[int, str]]:
    """Weekly, and the last day (when it does not crowd the week before)."""
    last = len(bars) - 1
    return [
        (bar.x + BAR_WIDTH // 2, bar.day.strftime("%m-%d"))
        for i, bar in enumerate(bars)
        if (i % 7 == 0 and last - i >= 4) or i == last
    ]


@dataclass(frozen=True)
class RefundTotal:
    currency: str
    refunds: int
    total: str  # money.display of the sum


def refund_totals(summary: DashboardSummary) -> list[RefundTotal]:
    """Refunds recorded over the revenue's window, per currency (BTC first), from the summary."""
    rows = (summary.figures or {}).get("refunds", [])
    return [
        RefundTotal(
            row["currency"], int(row["refunds"]), _money(int(row["amount_int"]), row["currency"])
        )
        for row in sorted(rows, key=lambda r: (r["currency"] != money.BTC, r["currency"]))
    ]


def _money(amount_int: int, currency: str) -> str:
    try:
        return money.display(amount_int, currency)
    except UnknownCurrency:
        return f"{amount_int} {currency} (smallest units)"
