"""mixed_load's database check: what the database holds against what the clients were told.

One function per property, each adding what it finds to `Problems` (the
first 20 are kept) and returning its figures for the report:

- orders: one per reference answered 201, none twice (`check_orders_made`);
- notifications: every acknowledged body stored once, applied, on its order,
  `times_received` within the answers and the sends (`check_notifications`);
- orders' states: status, payments, transitions, flags from the acknowledged
  notifications; forgery targets untouched (`check_order_states`);
- payments: the paid total and the count of new rows (`check_payments`);
- forgeries: the rejections counted per reason equal the 403s (`check_rejections`);
- shop events: one per order change, each delivered once (`check_shop_events`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from django.db.models import Count, Sum
from django.utils import timezone

from bench.mixed_scenario import REFERENCE_PREFIX, Scenario, Tracked
from payments.choices import IpnStatus, NotificationOutcome, RejectionReason
from payments.models import (
    Notification,
    Order,
    OrderFlag,
    OrderTransition,
    Payment,
    ReconciliationRun,
    RejectedNotification,
    ShopEvent,
    ShopEventAttempt,
    ShopEventDelivery,
)
from payments.states import OrderStatus

MAX_PROBLEMS = 20
# The reasons a forgery of the scenario is refused for (an oversized one is refused unread).
FORGERY_REASONS = (RejectionReason.BAD_SIGNATURE, RejectionReason.UNKNOWN_KEY)
S = OrderStatus
# The order's transitions (created -> awaiting_payment, then what the notifications did),
# by (plan, expected status); any other pair: awaiting_payment only.
TRANSITIONS: dict[tuple[str, str], list[str]] = {
    ("paid", S.PAID): [S.AWAITING_PAYMENT, S.PAID],
    ("partial_then_paid", S.PAID): [S.AWAITING_PAYMENT, S.CONFIRMING, S.PAID],
    ("partial_then_paid", S.CONFIRMING): [S.AWAITING_PAYMENT, S.CONFIRMING],
    ("cancelled", S.CANCELLED): [S.AWAITING_PAYMENT, S.CANCELLED],
}


class Problems(list[str]):
    """The first MAX_PROBLEMS problems found."""

    def add(self, text: str) -> None:
        if len(self) < MAX_PROBLEMS:
            self.append(text)


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def rejected_counts() -> dict[str, int]:
    """Rejected notifications counted so far, per reason."""
    rows = RejectedNotification.objects.values("reason").annotate(n=Sum("count")).order_by()
    return {row["reason"]: int(row["n"] or 0) for row in rows}


@dataclass
class Before:
    """Counts of shared tables before the scenario (other benchmarks use the same database)."""

    notifications: int
    payments: int
    rejected: dict[str, int]
    started: datetime

    @classmethod
    def take(cls) -> Before:
        return cls(
            Notification.objects.count(),
            Payment.objects.count(),
            rejected_counts(),
            timezone.now(),
        )


def expected_state(tracked: Tracked, acks: Counter[bytes]) -> tuple[str, list[tuple[str, bool]]]:
    """The order's status and its payments (status, has the order's amount) from what was acked."""
    acked = [body for body in tracked.bodies if acks[body]]
    statuses = [dict(parse_qsl(body.decode(), keep_blank_values=True))["status"] for body in acked]
    # Plain strings (`.value`): they are compared with rows and written in the problems.
    if IpnStatus.PAID in statuses:
        return S.PAID.value, [(Payment.Status.PAID.value, True)]
    if IpnStatus.CANCELLED in statuses:
        return S.CANCELLED.value, [(Payment.Status.CANCELLED.value, False)]
    if IpnStatus.PARTIAL in statuses:
        return S.CONFIRMING.value, [(Payment.Status.PARTIAL.value, False)]
    return S.AWAITING_PAYMENT.value, []


# --- orders made -----------------------------------------------------------------------


def created_references(scenario: Scenario) -> set[str]:
    return {ref for ref, answers in scenario.create_answers.items() if answers[201]}


def order_rows() -> dict[str, Any]:
    """The scenario's orders in the database, by reference."""
    return {
        row["reference"]: row
        for row in Order.objects.filter(reference__startswith=REFERENCE_PREFIX).values(
            "reference", "id", "status", "amount_int", "currency", "updated", "open_flags"
        )
    }


def check_orders_made(created: set[str], rows: dict[str, Any], problems: Problems) -> None:
    """One order per reference answered 201 (the Idempotency-Key), none for the rest unless
    its answer was lost."""
    per_reference = Counter(
        Order.objects.filter(reference__startswith=REFERENCE_PREFIX).values_list(
            "reference", flat=True
        )
    )
    doubled = [ref for ref, n in per_reference.items() if n > 1]
    if doubled:
        problems.add(f"{len(doubled)} references with several orders, e.g. {doubled[:3]}")
    missing = sorted(created - set(rows))
    if missing:
        problems.add(f"{len(missing)} orders answered 201 are missing, e.g. {missing[:3]}")


# --- notifications -----------------------------------------------------------------------


def _stored_notifications(bodies: list[bytes]) -> dict[str, Any]:
    return {
        row["body_sha256"]: row
        for i in range(0, len(bodies), 500)
        for row in Notification.objects.filter(
            body_sha256__in=[_digest(b) for b in bodies[i : i + 500]]
        ).values("body_sha256", "times_received", "outcome", "order_id", "status")
    }


def _check_stored(scenario: Scenario, body: bytes, row: dict[str, Any], problems: Problems) -> bool:
    """One stored notification: applied, on its order; False when times_received is off."""
    in_range = scenario.acks[body] <= row["times_received"] <= scenario.sends[body]
    if not in_range:
        problems.add(
            f"notification {row['status']} of {scenario.owner[body]}: times_received "
            f"{row['times_received']}, acknowledged {scenario.acks[body]}, "
            f"sent {scenario.sends[body]}"
        )
    tracked = scenario.orders[scenario.owner[body]]
    if row["outcome"] != NotificationOutcome.APPLIED:
        problems.add(f"notification {row['status']} of {tracked.reference}: {row['outcome']}")
    if str(row["order_id"]) != tracked.order_id:
        problems.add(f"notification {row['status']} of {tracked.reference} on another order")
    return in_range


def check_notifications(
    scenario: Scenario, before: Before, problems: Problems
) -> tuple[dict[str, Any], int]:
    """The authentic bodies sent, each stored at most once, counted as received; no forgery
    stored, no other row new. Returns the figures and `forged_stored`."""
    sent_bodies = list(scenario.sends)
    stored = _stored_notifications(sent_bodies)
    acked = [body for body in sent_bodies if scenario.acks[body]]
    not_stored = [body for body in acked if _digest(body) not in stored]
    if not_stored:
        problems.add(f"{len(not_stored)} acknowledged notifications not stored")
    times_off = matching = 0
    outcomes: Counter[str] = Counter()
    for body in sent_bodies:
        row = stored.get(_digest(body))
        if row is None:
            continue
        outcomes[row["outcome"]] += 1
        times_off += not _check_stored(scenario, body, row, problems)
        matching += row["times_received"] == scenario.acks[body]
    forged = [_digest(b) for b in scenario.forged]
    forged_stored = Notification.objects.filter(body_sha256__in=forged).count()
    if forged_stored:
        problems.add(f"{forged_stored} forged notifications were stored")
    notifications_new = Notification.objects.count() - before.notifications
    if notifications_new != len(stored):
        problems.add(f"{notifications_new} new notification rows for {len(stored)} distinct bodies")
    return {
        "distinct_sent": len(sent_bodies),
        "distinct_acknowledged": len(acked),
        "sent": sum(scenario.sends.values()),
        "acknowledged": sum(scenario.acks.values()),
        "stored": len(stored),
        "outcomes": dict(outcomes),
        "times_received_matching_acks": matching,
        "times_received_out_of_range": times_off,
    }, forged_stored


# --- orders' states ----------------------------------------------------------------------


@dataclass
class Related:
    """The rows of the scenario's orders, by order id (str)."""

    payments: dict[str, list[Any]] = field(default_factory=dict)
    transitions: dict[str, list[str]] = field(default_factory=dict)
    notified: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, order_ids: list[Any]) -> Related:
        related = cls()
        for payment in Payment.objects.filter(order_id__in=order_ids).values(
            "order_id", "status", "amount_int", "currency", "payment_id"
        ):
            related.payments.setdefault(str(payment["order_id"]), []).append(payment)
        for step in (
            OrderTransition.objects.filter(order_id__in=order_ids)
            .order_by("created", "id")
            .values("order_id", "to_status")
        ):
            related.transitions.setdefault(str(step["order_id"]), []).append(step["to_status"])
        related.notified.update(
            str(o)
            for o in Notification.objects.filter(order_id__in=order_ids).values_list(
                "order_id", flat=True
            )
        )
        return related


def check_flags(order_ids: list[Any], problems: Problems) -> None:
    """No flag raised on the scenario's orders."""
    kinds = Counter(OrderFlag.objects.filter(order_id__in=order_ids).values_list("kind", flat=True))
    if kinds:
        problems.add(f"{kinds.total()} flags raised on the scenario's orders: {dict(kinds)}")


@dataclass
class StateFigures:
    states: Counter[str] = field(default_factory=Counter)
    expected_paid_total: int = 0
    paid_total: int = 0
    forgery_targets_untouched: int = 0


def _check_payments_of(
    tracked: Tracked, want_payments: list[Any], payments: list[Any], problems: Problems
) -> int:
    """The order's payments as its notifications imply; returns its paid amount."""
    got = [(p["status"], p["amount_int"] == tracked.amount_int) for p in payments]
    if got != want_payments:
        problems.add(
            f"order {tracked.reference} ({tracked.plan}): payments {got}, not {want_payments}"
        )
    paid = 0
    for p in payments:
        if p["status"] == Payment.Status.PAID:
            paid += p["amount_int"] or 0
            if p["currency"] != "BTC":
                problems.add(f"order {tracked.reference}: a payment in {p['currency']}")
    return paid


def _untouched(tracked: Tracked, row: dict[str, Any], related: Related) -> bool:
    """A forgery target as created: same status and `updated`, no payment, notification, flag."""
    return (
        row["status"] == S.AWAITING_PAYMENT
        and row["updated"] == tracked.updated
        and not related.payments.get(tracked.order_id)
        and not related.notified[tracked.order_id]
        and row["open_flags"] == 0
    )


def _check_order(
    tracked: Tracked, row: dict[str, Any], scenario: Scenario, related: Related, problems: Problems
) -> tuple[str, int]:
    """One order against its acknowledged notifications: (the status it should have, its
    paid amount)."""
    want, want_payments = expected_state(tracked, scenario.acks)
    if row["status"] != want:
        problems.add(f"order {tracked.reference} ({tracked.plan}) is {row['status']}, not {want}")
    payments = related.payments.get(tracked.order_id, [])
    paid = _check_payments_of(tracked, want_payments, payments, problems)
    want_transitions = [str(s) for s in TRANSITIONS.get((tracked.plan, want), [S.AWAITING_PAYMENT])]
    if related.transitions.get(tracked.order_id, []) != want_transitions:
        problems.add(
            f"order {tracked.reference}: transitions {related.transitions.get(tracked.order_id)}, "
            f"not {want_transitions}"
        )
    if tracked.plan == "forgery_target" and not _untouched(tracked, row, related):
        problems.add(f"forgery target {tracked.reference} was touched")
    return want, paid


def check_order_states(
    scenario: Scenario, rows: dict[str, Any], related: Related, problems: Problems
) -> StateFigures:
    """Every order in the state its acknowledged notifications say, with their payments and
    transitions; every forgery target untouched."""
    figures = StateFigures()
    for tracked in scenario.orders.values():
        row = rows.get(tracked.reference)
        if row is None:
            continue
        if not tracked.order_id:
            problems.add(f"order {tracked.reference} is {row['status']}, without a transaction")
            continue
        figures.states[row["status"]] += 1
        want, paid = _check_order(tracked, row, scenario, related, problems)
        figures.paid_total += paid
        if want == S.PAID:
            figures.expected_paid_total += tracked.amount_int
        if tracked.plan == "forgery_target":
            figures.forgery_targets_untouched += _untouched(tracked, row, related)
    return figures


# --- payments, forgeries, shop events, sweeps ---------------------------------------------


def check_payments(
    scenario: Scenario, before: Before, figures: StateFigures, problems: Problems
) -> dict[str, int]:
    """The paid payments add up to the paid orders; the new payment rows are those expected."""
    if figures.paid_total != figures.expected_paid_total:
        problems.add(f"paid total {figures.paid_total}, expected {figures.expected_paid_total}")
    payments_new = Payment.objects.count() - before.payments
    payments_expected = sum(
        len(expected_state(t, scenario.acks)[1]) for t in scenario.orders.values()
    )
    if payments_new != payments_expected:
        problems.add(f"{payments_new} new payments, expected {payments_expected}")
    return {
        "payments_new": payments_new,
        "payments_expected": payments_expected,
        "paid_total_int": figures.paid_total,
        "expected_paid_total_int": figures.expected_paid_total,
    }


def check_rejections(scenario: Scenario, before: Before, problems: Problems) -> dict[str, int]:
    """Forgeries refused and counted per reason (oversized ones are refused before that);
    no rejection for another reason. Returns the rejections counted."""
    now = rejected_counts()
    rejected: dict[str, int] = {
        reason: now.get(reason, 0) - before.rejected.get(reason, 0) for reason in FORGERY_REASONS
    }
    answered_403 = {
        reason: scenario.forgery_answers.get(f"forgery_{reason}", Counter())[403]
        for reason in FORGERY_REASONS
    }
    if rejected != answered_403:
        problems.add(f"rejections counted {rejected}, forgeries answered 403 {answered_403}")
    other_reasons = {
        reason: n - before.rejected.get(reason, 0)
        for reason, n in now.items()
        if reason not in rejected and n != before.rejected.get(reason, 0)
    }
    if other_reasons:
        problems.add(f"rejections for other reasons: {other_reasons}")
    return rejected


def check_shop_events(order_ids: list[Any], related: Related, problems: Problems) -> dict[str, int]:
    """Shop events (written with each change, POSTed by the Celery workers): one per change,
    each delivered, none twice."""
    events = Counter(
        (str(o), t)
        for o, t in ShopEvent.objects.filter(order_id__in=order_ids).values_list("order_id", "type")
    )
    changes = Counter(
        (order_id, f"order.{to}") for order_id, tos in related.transitions.items() for to in tos
    )
    if events != changes:
        extra, lost = events - changes, changes - events
        problems.add(f"shop events: {sum(lost.values())} missing, {sum(extra.values())} extra")
    undelivered = ShopEventDelivery.objects.filter(
        event__order_id__in=order_ids, delivered_at__isnull=True
    ).count()
    if undelivered:
        problems.add(f"{undelivered} shop event deliveries not delivered")
    attempts = ShopEventAttempt.objects.filter(delivery__event__order_id__in=order_ids)
    ok_attempts = Counter(
        attempts.filter(ok=True)
        .values("delivery_id")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    delivered_twice = sum(n for k, n in ok_attempts.items() if k > 1)
    if delivered_twice:
        problems.add(f"{delivered_twice} shop events delivered more than once")
    return {
        "events": sum(events.values()),
        "changes": sum(changes.values()),
        "undelivered": undelivered,
        "delivered_more_than_once": delivered_twice,
        "failed_attempts": attempts.filter(ok=False).count(),
    }


def sweeps_since(started: datetime) -> dict[str, Any]:
    """Which sweeps ran during the scenario and what they found (nothing, if all went well)."""
    runs = ReconciliationRun.objects.filter(started__gte=started)
    found: Counter[str] = Counter()
    for counts in runs.values_list("counts", flat=True):
        found.update({k: v for k, v in (counts or {}).items() if isinstance(v, int)})
    return {
        "sweeps_run_during_scenario": dict(Counter(runs.values_list("sweep", flat=True))),
        "sweeps_found": dict(found),
    }


# --- all of it ---------------------------------------------------------------------------


def check_database(scenario: Scenario, before: Before, unexpected_answers: int) -> dict[str, Any]:
    """Everything acknowledged applied exactly once; forgeries changed nothing; nothing lost."""
    problems = Problems()
    created = created_references(scenario)
    rows = order_rows()
    check_orders_made(created, rows, problems)
    order_ids = [row["id"] for row in rows.values()]
    notifications, forged_stored = check_notifications(scenario, before, problems)
    related = Related.of(order_ids)
    check_flags(order_ids, problems)
    states = check_order_states(scenario, rows, related, problems)
    payments = check_payments(scenario, before, states, problems)
    rejected = check_rejections(scenario, before, problems)
    shop_events = check_shop_events(order_ids, related, problems)
    orders = scenario.orders.values()
    return {
        "correct": not problems and unexpected_answers == 0,
        "problems": list(problems),
        "unexpected_answers": unexpected_answers,
        "orders_created": len(created),
        "orders_by_status": dict(states.states),
        "orders_by_plan": dict(Counter(t.plan for t in orders if t.order_id)),
        "notifications": notifications,
        **payments,
        "forgeries": {
            "answers": {
                k: {str(s): n for s, n in v.items()} for k, v in scenario.forgery_answers.items()
            },
            "stored": forged_stored,
            "rejections_counted": rejected,
            "targets": sum(1 for t in orders if t.plan == "forgery_target"),
            "targets_untouched": states.forgery_targets_untouched,
        },
        "shop_events": shop_events,
        **sweeps_since(before.started),
    }
