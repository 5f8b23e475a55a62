"""The dashboard's figures: reads only, each an index lookup or a bounded number of rows.

The page that shows them is payments.admin.dashboard; the summary rows they
mostly read are written by payments.services.dashboard_summary. So that the
dashboard costs the same at a million orders as at ten thousand:

- figures that would scan a table (orders per status, revenue, refunds, open
  flags, late notifications) come from the DashboardSummary rows: the one of
  every shop together, or the sum of the rows of the shops shown
  (`dashboard_summary_for`);
- counts that may be large are capped (payments.counting: "10,000+");
- the live reads take `shop_ids` (None: every shop) and stay index lookups per
  shop (notification_shop_received, order_shop_created).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Any

from django.db.models import Max, OuterRef, Subquery, Sum
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
    Shop,
)
from payments.shops import scope_to_shops
from payments.states import OrderStatus

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


# Counts in DashboardSummary.figures that add up across shops (the rest: "refunds").
SUMMED_FIGURES = ("flagged_orders", "notifications_24h", "notifications_late_24h")


def dashboard_summary_get() -> DashboardSummary | None:
    """The summary of every shop together (the newest, should a race have written two)."""
    return (
        DashboardSummary.objects.filter(shop__isnull=True).order_by("-computed_at", "-pk").first()
    )


def dashboard_summary_for(shop_ids: list[int] | None) -> DashboardSummary | None:
    """The summary of these shops (None: every shop): the sum of their rows, stamped as the
    whole's. None when nothing was ever computed. Two reads, whatever the data's size."""
    whole = dashboard_summary_get()
    if whole is None or shop_ids is None:
        return whole
    rows = DashboardSummary.objects.filter(shop_id__in=shop_ids)
    return summaries_merged(rows, base=whole)


def summaries_merged(
    rows: Iterable[DashboardSummary], *, base: DashboardSummary
) -> DashboardSummary:
    """One summary adding up `rows` (several shops'), stamped with `base`'s time and window.

    Not saved. With no rows: every count 0 (a shop with nothing counted has no row).
    """
    status: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    counts: Counter[str] = Counter({name: 0 for name in SUMMED_FIGURES})
    revenue: Counter[tuple[str, str, str]] = Counter()  # (day, currency, "amount_int"/"payments")
    refunds: Counter[tuple[str, str]] = Counter()  # (currency, "amount_int"/"refunds")
    for row in rows:
        status.update(row.orders_by_status or {})
        flags.update(row.open_flags_by_kind or {})
        figures = row.figures or {}
        counts.update({name: int(figures.get(name) or 0) for name in SUMMED_FIGURES})
        for r in row.revenue or []:
            for key in ("amount_int", "payments"):
                revenue[(r["day"], r["currency"], key)] += int(r[key])
        for r in figures.get("refunds", []):
            for key in ("amount_int", "refunds"):
                refunds[(r["currency"], key)] += int(r[key])
    return DashboardSummary(
        computed_at=base.computed_at,
        duration_ms=base.duration_ms,
        revenue_days=base.revenue_days,
        orders_by_status=dict(status),
        revenue=_rows_of(revenue, ("day", "currency"), ("amount_int", "payments")),
        open_flags_by_kind=dict(flags),
        figures={**counts, "refunds": _rows_of(refunds, ("currency",), ("amount_int", "refunds"))},
    )


def _rows_of(
    sums: Counter[Any], keys: tuple[str, ...], values: tuple[str, str]
) -> list[dict[str, Any]]:
    """Counter entries {(*key values, value name): n} as sorted rows {key: .., value: n}."""
    groups = sorted({entry[:-1] for entry in sums})
    return [
        {**dict(zip(keys, group, strict=True)), **{v: sums[(*group, v)] for v in values}}
        for group in groups
    ]


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
    limit: int = FLAG_QUEUE_LENGTH,
    *,
    kinds: Collection[str] | None = None,
    shop_ids: list[int] | None = None,
) -> list[OrderFlag]:
    """The newest open flags (of `kinds`, or all) of these shops' orders (None: every shop).

    An index scan: the partial index flag_open_created, or flag_open_kind for some kinds
    (open flags are few: a shop's are found among them).
    """
    open_flags = scope_to_shops(
        OrderFlag.objects.filter(reviewed_at__isnull=True), shop_ids=shop_ids, path="order__shop"
    )
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
    rejected_last_hour: int | None  # of the whole service: None for one shop's staff
    waiting: Capped  # stored, never applied or failed: the apply_pending sweep's work
    needs_review: Capped
    received_24h: int | None  # from the summary
    late_24h: int | None  # from the summary


def notification_health(
    summary: DashboardSummary | None,
    *,
    now: datetime | None = None,
    shop_ids: list[int] | None = None,
) -> NotificationHealth:
    """The notifications of these shops (None: every shop, and the rejected requests too)."""
    now = now or timezone.now()
    notifications = scope_to_shops(Notification.objects.all(), shop_ids=shop_ids, path="shop")
    figures = summary.figures if summary is not None else {}
    return NotificationHealth(
        last_received=_last_received(shop_ids),
        rejected_last_hour=_rejected_last_hour(now) if shop_ids is None else None,
        waiting=count_upto(
            notifications.filter(
                outcome__in=(Notification.Outcome.PENDING, Notification.Outcome.ERROR)
            )
        ),
        needs_review=count_upto(notifications.filter(needs_review=True)),
        received_24h=figures.get("notifications_24h"),
        late_24h=figures.get("notifications_late_24h"),
    )


def _last_received(shop_ids: list[int] | None) -> datetime | None:
    """The newest notification's time: one index probe per shop (notification_shop_received)."""
    if shop_ids is None:
        return Notification.objects.aggregate(last=Max("received_at"))["last"]
    newest = Notification.objects.filter(shop=OuterRef("pk")).order_by("-received_at")
    per_shop = (
        Shop.objects.filter(pk__in=shop_ids)
        .annotate(last=Subquery(newest.values("received_at")[:1]))
        .values_list("last", flat=True)
    )
    return max((last for last in per_shop if last is not None), default=None)


def _rejected_last_hour(now: datetime) -> int:
    rejected = RejectedNotification.objects.filter(
        window_start__gte=now - timedelta(hours=1)
    ).aggregate(n=Sum("count"))["n"]
    return int(rejected or 0)


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
