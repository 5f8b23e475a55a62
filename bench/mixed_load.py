"""mixed_load: a mixed scenario under load, then the database checked; mixed req/s ÷ minimal.

No numeric target (issue 9 asks for the figures and for the service to stay
correct under load): the benchmark meets its target when the database check
is correct.

Everything runs on loopback as in production: the service in gunicorn
(gthread, 2 workers x 8 threads, DJANGO_DEBUG=0, PostgreSQL), the sandbox
gateway as its own gunicorn server, Redis as the Celery broker
(BENCH_BROKER_URL, emptied first), two real `celery worker` processes and
`celery beat`, with the reconciliation sweeps every few seconds and shop
webhooks on (POSTed by the workers to the sandbox server's /bench/minimal/),
so that sweeps and deliveries run alongside the requests.

Each measured round is one closed-loop phase (16 connections, bounded in
time) of requests in random order:

- order creation: POST /api/orders/ with a token and an Idempotency-Key
  (each goes to the sandbox's merchant/order/create over HTTP);
- notifications as the gateway sends them, signed with the service's
  credentials, for orders created in earlier rounds: `paid`; `partial`, then
  `paid` of the same payment in a later round; `cancelled`;
- the same signed body again: some sent as three concurrent copies, some
  re-sent in a later round (the gateway's retries);
- forgeries against orders that nothing else touches: a bad signature, an
  unknown Rest-Key, and a correctly signed body over 64 KiB;
- reads: GET /api/orders/ and GET /api/orders/<id>/.

Rounds alternate with phases of the baseline, GET /bench/minimal/ (a plain
Django view answering "ok") in the same server from the same connections:
ratio = mixed requests/s ÷ minimal requests/s.

The closed-loop rounds run at saturation (their latency is mostly queueing).
After them, an open-loop phase sends the same kind of mix (built the same way:
fresh orders, the next notifications of earlier orders, duplicates, forgeries,
reads) at a fixed rate, a fixed fraction of the mixed requests/s the
closed-loop rounds of the same run measured, for a bounded time: request i is
due at start + i / rate (three concurrent copies share one due time), latency
counts from the due time (no coordinated omission), and what was never
answered as expected counts as infinitely slow.

Then the workers finish the webhook deliveries, everything stops, and the
database is checked against what the clients saw: every acknowledged
notification stored once and applied once, every order in the state its
acknowledged notifications say with exactly the payments they imply,
forgeries left nothing behind, every order change has one shop event,
delivered once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from bench.common import (
    PAYMENTS_TABLES,
    Phase,
    measure,
    measure_round,
    progress,
    require_success,
    wait_for_idle,
)
from bench.load import (
    Expect,
    Item,
    KindResult,
    LoadGenerator,
    LoadResult,
    item_outcomes,
    latency_summary,
    merge_kinds,
)
from bench.servers import (
    HOST,
    BenchError,
    CeleryProcess,
    CpuSnapshot,
    Infrastructure,
    ServerConfig,
    free_port,
    log,
)
from payments.choices import NotificationOutcome, RejectionReason, Sweep

NAME = "mixed_load"
SERVICE = ServerConfig(workers=2, worker_class="gthread", threads=8)  # the Procfile's web
SANDBOX = ServerConfig(workers=2, worker_class="gthread", threads=4)
PROCESSES = 2
WORKERS = 2
WORKER_CONCURRENCY = 2  # the Procfile's worker
# Sweeps every few seconds so that they run during the rounds, racing the requests.
SWEEP_SECONDS = f"{Sweep.APPLY_PENDING}=2,{Sweep.EXPIRE}=3,{Sweep.STUCK}=5,{Sweep.LEDGER}=3"
REFERENCE_PREFIX = "mixed-"
OVERSIZED_BYTES = 64 * 1024 + 512
SEED = 9

# What the scenario does with an order it creates: the notifications the gateway sends.
PLANS = {
    "paid": 0.40,
    "partial_then_paid": 0.25,
    "cancelled": 0.15,
    "unpaid": 0.10,  # never notified: stays awaiting payment
    "forgery_target": 0.10,  # only forgeries: must stay untouched
}
CONCURRENT_DUPLICATES = 0.2  # of new notifications, sent as three concurrent copies
LATER_DUPLICATES = 0.15  # re-sends of earlier acknowledged ones, per new notification
FORGERIES = 0.25  # per new notification (at least 3 a round once there are targets)
READS = 1.0  # per order created
FORGERY_KINDS = ("forgery_bad_signature", "forgery_unknown_key", "forgery_oversized")

ACK = Expect(200, b"[OK]")
CREATED = Expect(201)
OK = Expect(200)
EXPECTED = {
    "order_create": CREATED,
    "ipn": ACK,
    "ipn_duplicate_concurrent": ACK,
    "ipn_duplicate_later": ACK,
    "forgery_bad_signature": Expect(403),
    "forgery_unknown_key": Expect(403),
    "forgery_oversized": Expect(413),
    "read_list": OK,
    "read_detail": OK,
}
IPN_KINDS = ("ipn", "ipn_duplicate_concurrent", "ipn_duplicate_later")
# The open loop's rate: this fraction of the closed-loop mixed requests/s of the same run.
OPEN_LOOP_FRACTION = 0.5
OPEN_LOOP_MIN_RATE = 5
OPEN_LOOP_RULE = (
    f"{OPEN_LOOP_FRACTION:.0%} of the mixed requests/s measured by this run's closed-loop "
    f"rounds, rounded to a whole number (at least {OPEN_LOOP_MIN_RATE}/s)"
)


@dataclass(frozen=True)
class Sizes:
    connections: int
    rounds: int
    seconds_per_round: float
    minimal_seconds: float
    warmup_creates: int
    drain_seconds: float
    open_loop_seconds: float


FULL = Sizes(
    connections=16,
    rounds=4,
    seconds_per_round=8.0,
    minimal_seconds=4.0,
    warmup_creates=48,
    drain_seconds=60.0,
    open_loop_seconds=20.0,
)
QUICK = replace(
    FULL,
    rounds=2,
    seconds_per_round=3.0,
    minimal_seconds=1.5,
    warmup_creates=24,
    drain_seconds=30.0,
    open_loop_seconds=4.0,
)


# --- the scenario's own record of what it sent and what came back ----------------------


@dataclass
class Tracked:
    """An order the scenario created, and the notifications its plan sends, in order."""

    reference: str
    plan: str
    amount_int: int
    order_id: str = ""
    transaction: str = ""
    updated: datetime | None = None  # when created (forgery targets must keep it)
    bodies: list[bytes] = field(default_factory=list)
    stage: int = 0  # bodies[:stage] were acknowledged (the next one goes in the next round)


@dataclass(frozen=True)
class Meta:
    """What one item of a round is, to read its outcome."""

    kind: str
    reference: str = ""
    body: bytes = b""


@dataclass
class Scenario:
    service_url: str
    token: str
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    orders: dict[str, Tracked] = field(default_factory=dict)
    made: int = 0
    sends: Counter[bytes] = field(default_factory=Counter)  # authentic bodies
    acks: Counter[bytes] = field(default_factory=Counter)
    owner: dict[bytes, str] = field(default_factory=dict)  # authentic body -> reference
    acked_order: list[bytes] = field(default_factory=list)  # for later duplicates
    create_answers: dict[str, Counter[int]] = field(default_factory=dict)
    forged: dict[bytes, str] = field(default_factory=dict)  # forged body -> kind
    forgery_answers: dict[str, Counter[int]] = field(default_factory=dict)

    # -- building a round --
    def _headers(self, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        return (
            ("Authorization", f"Token {self.token}"),
            ("Accept", "application/json"),
            ("User-Agent", "merchant-bench"),
            *extra,
        )

    def _create(self) -> tuple[Item, Meta]:
        index, self.made = self.made, self.made + 1
        reference = f"{REFERENCE_PREFIX}{index:06d}"
        plan = self.rng.choices(list(PLANS), weights=list(PLANS.values()))[0]
        amount_int = 1_000_000 + index  # BTC 0.01000000 + index satoshi: each its own amount
        self.orders[reference] = Tracked(reference, plan, amount_int)
        body = json.dumps(
            {
                "reference": reference,
                "amount_int": amount_int,
                "currency": "BTC",
                "description": f"mixed load {plan}",
                "return_success": f"{self.service_url}/shop/thanks",
            }
        ).encode()
        headers = self._headers(
            ("Content-Type", "application/json"), ("Idempotency-Key", reference)
        )
        item = Item("POST", "/api/orders/", body, headers, "order_create", CREATED)
        return item, Meta("order_create", reference)

    @staticmethod
    def _ipn(body: bytes, kind: str) -> Item:
        from payments.testing import signed_headers

        return Item("POST", "/payments/ipn/", body, tuple(signed_headers(body).items()), kind, ACK)

    def _forgery(self, target: Tracked, kind: str) -> tuple[Item, Meta]:
        from payments.testing import ipn_body, signed_headers

        data = "x" * OVERSIZED_BYTES if kind == "forgery_oversized" else None
        body = ipn_body(
            transaction=target.transaction,
            status="paid",
            amount_int=target.amount_int,
            data=data,
        )
        if kind == "forgery_bad_signature":
            wrong_secret = base64.b64encode(self.rng.randbytes(64)).decode()
            headers = signed_headers(body, api_secret=wrong_secret)
        elif kind == "forgery_unknown_key":
            somebody_else = base64.b64encode(self.rng.randbytes(64)).decode()
            headers = signed_headers(body, api_key=str(uuid.uuid4()), api_secret=somebody_else)
        else:  # signed with the right credentials, but too large to be read at all
            headers = signed_headers(body)
        self.forged[body] = kind
        item = Item("POST", "/payments/ipn/", body, tuple(headers.items()), kind, EXPECTED[kind])
        return item, Meta(kind, target.reference, body)

    def build_round(self, creates: int) -> tuple[list[Item], list[Meta]]:
        """One round's requests: creates, next notifications, duplicates, forgeries, reads."""
        rng = self.rng
        groups: list[list[tuple[Item, Meta]]] = [[self._create()] for _ in range(creates)]
        known = [t for t in self.orders.values() if t.order_id]
        new = 0
        for tracked in known:
            if tracked.stage >= len(tracked.bodies):
                continue
            body = tracked.bodies[tracked.stage]
            meta = Meta("ipn", tracked.reference, body)
            group = [(self._ipn(body, "ipn"), meta)]
            if rng.random() < CONCURRENT_DUPLICATES:  # the same body, at the same moment
                copy = Meta("ipn_duplicate_concurrent", tracked.reference, body)
                group += [(self._ipn(body, copy.kind), copy) for _ in range(2)]
            groups.append(group)
            new += 1
        if self.acked_order:
            later = min(len(self.acked_order), int(new * LATER_DUPLICATES) + 1)
            for body in rng.sample(self.acked_order, later):
                meta = Meta("ipn_duplicate_later", self.owner[body], body)
                groups.append([(self._ipn(body, meta.kind), meta)])
        targets = [t for t in known if t.plan == "forgery_target" and t.transaction]
        if targets:
            for i in range(max(3, int(new * FORGERIES))):
                kind = FORGERY_KINDS[i % len(FORGERY_KINDS)]
                groups.append([self._forgery(rng.choice(targets), kind)])
        headers = self._headers()
        for _ in range(int(creates * READS)):
            if known and rng.random() < 2 / 3:
                tracked = rng.choice(known)
                meta = Meta("read_detail", tracked.reference)
                path = f"/api/orders/{tracked.order_id}/"
            else:
                meta = Meta("read_list")
                path = "/api/orders/"
            groups.append([(Item("GET", path, b"", headers, meta.kind, OK), meta)])
        rng.shuffle(groups)  # a group (concurrent copies) stays together
        pairs = [pair for group in groups for pair in group]
        return [item for item, _ in pairs], [meta for _, meta in pairs]

    # -- after a round --
    def record(self, items: list[Item], metas: list[Meta], load: LoadResult) -> int:
        """Read the answers; returns how many requests were sent."""
        sent_creates: set[str] = set()
        sent = 0
        for index, status, ok in item_outcomes(items, PROCESSES, load.outcomes_per_job):
            sent += 1
            meta = metas[index]
            if meta.kind == "order_create":
                sent_creates.add(meta.reference)
                self.create_answers.setdefault(meta.reference, Counter())[status] += 1
            elif meta.kind in IPN_KINDS:
                self.owner.setdefault(meta.body, meta.reference)
                self.sends[meta.body] += 1
                if ok:
                    if not self.acks[meta.body]:
                        self.acked_order.append(meta.body)
                    self.acks[meta.body] += 1
            elif meta.kind in FORGERY_KINDS:
                self.forgery_answers.setdefault(meta.kind, Counter())[status] += 1
        for meta in metas:  # creates never sent (the round's time was up): never made
            if meta.kind == "order_create" and meta.reference not in sent_creates:
                del self.orders[meta.reference]
        self._look_up(sent_creates)
        for tracked in self.orders.values():
            while tracked.stage < len(tracked.bodies) and self.acks[tracked.bodies[tracked.stage]]:
                tracked.stage += 1
        return sent

    def _look_up(self, references: Iterable[str]) -> None:
        """The orders just created, from the database: ids, transactions, their notifications."""
        from payments.models import Order
        from payments.testing import ipn_body

        wanted = list(references)
        for i in range(0, len(wanted), 500):
            rows = Order.objects.filter(reference__in=wanted[i : i + 500]).values(
                "reference", "id", "transaction", "updated"
            )
            for row in rows:
                tracked = self.orders[row["reference"]]
                if tracked.order_id or row["transaction"] is None:
                    continue
                tracked.order_id = str(row["id"])
                tracked.transaction = str(row["transaction"])
                tracked.updated = row["updated"]
                payment_id = uuid.uuid4()
                t, amount = tracked.transaction, tracked.amount_int
                if tracked.plan == "paid":
                    tracked.bodies = [
                        ipn_body(
                            transaction=t, status="paid", payment_id=payment_id, amount_int=amount
                        )
                    ]
                elif tracked.plan == "partial_then_paid":
                    tracked.bodies = [
                        ipn_body(
                            transaction=t,
                            status="partial",
                            payment_id=payment_id,
                            amount_pending=amount,
                            amount_valid=0,
                        ),
                        ipn_body(
                            transaction=t, status="paid", payment_id=payment_id, amount_int=amount
                        ),
                    ]
                elif tracked.plan == "cancelled":
                    tracked.bodies = [
                        ipn_body(transaction=t, status="cancelled", payment_id=payment_id)
                    ]


# --- the database check --------------------------------------------------------------


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass
class Before:
    """Counts of shared tables before the scenario (other benchmarks use the same database)."""

    notifications: int
    payments: int
    rejected: dict[str, int]
    started: datetime

    @classmethod
    def take(cls) -> Before:
        from django.utils import timezone

        from payments.models import Notification, Payment

        return cls(
            Notification.objects.count(), Payment.objects.count(), _rejected(), timezone.now()
        )


def _rejected() -> dict[str, int]:
    from django.db.models import Sum

    from payments.models import RejectedNotification

    rows = RejectedNotification.objects.values("reason").annotate(n=Sum("count")).order_by()
    return {row["reason"]: int(row["n"] or 0) for row in rows}


def _expected_state(tracked: Tracked, acks: Counter[bytes]) -> tuple[str, list[tuple[str, bool]]]:
    """The order's status and its payments (status, has the order's amount) from what was acked."""
    acked = [body for body in tracked.bodies if acks[body]]
    statuses = [dict(_fields(body))["status"] for body in acked]
    if "paid" in statuses:
        return "paid", [("paid", True)]
    if "cancelled" in statuses:
        return "cancelled", [("cancelled", False)]
    if "partial" in statuses:
        return "confirming", [("partial", False)]
    return "awaiting_payment", []


def _fields(body: bytes) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(body.decode(), keep_blank_values=True)


TRANSITIONS = {
    # created -> awaiting_payment, then what the notifications did
    ("paid", "paid"): ["awaiting_payment", "paid"],
    ("partial_then_paid", "paid"): ["awaiting_payment", "confirming", "paid"],
    ("partial_then_paid", "confirming"): ["awaiting_payment", "confirming"],
    ("cancelled", "cancelled"): ["awaiting_payment", "cancelled"],
}


def check_database(scenario: Scenario, before: Before, unexpected_answers: int) -> dict[str, Any]:
    """Everything acknowledged applied exactly once; forgeries changed nothing; nothing lost."""
    from django.db.models import Count

    from payments.models import (
        Notification,
        Order,
        OrderFlag,
        OrderTransition,
        Payment,
        ReconciliationRun,
        ShopEvent,
        ShopEventAttempt,
    )

    problems: list[str] = []

    def problem(text: str) -> None:
        if len(problems) < 20:
            problems.append(text)

    # Orders: one per reference answered 201 (the Idempotency-Key), none for the rest unless
    # its answer was lost.
    created = {ref for ref, answers in scenario.create_answers.items() if answers[201]}
    rows: dict[str, Any] = {
        row["reference"]: row
        for row in Order.objects.filter(reference__startswith=REFERENCE_PREFIX).values(
            "reference", "id", "status", "amount_int", "currency", "updated", "open_flags"
        )
    }
    per_reference = Counter(
        Order.objects.filter(reference__startswith=REFERENCE_PREFIX).values_list(
            "reference", flat=True
        )
    )
    doubled = [ref for ref, n in per_reference.items() if n > 1]
    if doubled:
        problem(f"{len(doubled)} references with several orders, e.g. {doubled[:3]}")
    missing = sorted(created - set(rows))
    if missing:
        problem(f"{len(missing)} orders answered 201 are missing, e.g. {missing[:3]}")
    order_ids = [row["id"] for row in rows.values()]

    # Notifications: the authentic bodies sent, each stored at most once, counted as received.
    sent_bodies = list(scenario.sends)
    stored: dict[str, Any] = {
        row["body_sha256"]: row
        for i in range(0, len(sent_bodies), 500)
        for row in Notification.objects.filter(
            body_sha256__in=[_digest(b) for b in sent_bodies[i : i + 500]]
        ).values("body_sha256", "times_received", "outcome", "order_id", "status")
    }
    acked = [body for body in sent_bodies if scenario.acks[body]]
    not_stored = [body for body in acked if _digest(body) not in stored]
    if not_stored:
        problem(f"{len(not_stored)} acknowledged notifications not stored")
    times_off = 0
    outcomes: Counter[str] = Counter()
    for body in sent_bodies:
        found = stored.get(_digest(body))
        if found is None:
            continue
        row = found
        outcomes[row["outcome"]] += 1
        if not scenario.acks[body] <= row["times_received"] <= scenario.sends[body]:
            times_off += 1
            problem(
                f"notification {row['status']} of {scenario.owner[body]}: times_received "
                f"{row['times_received']}, acknowledged {scenario.acks[body]}, "
                f"sent {scenario.sends[body]}"
            )
        tracked = scenario.orders[scenario.owner[body]]
        if row["outcome"] != NotificationOutcome.APPLIED:
            problem(f"notification {row['status']} of {tracked.reference}: {row['outcome']}")
        if str(row["order_id"]) != tracked.order_id:
            problem(f"notification {row['status']} of {tracked.reference} on another order")
    forged_stored = Notification.objects.filter(
        body_sha256__in=[_digest(b) for b in scenario.forged]
    ).count()
    if forged_stored:
        problem(f"{forged_stored} forged notifications were stored")
    notifications_new = Notification.objects.count() - before.notifications
    if notifications_new != len(stored):
        problem(f"{notifications_new} new notification rows for {len(stored)} distinct bodies")

    # Orders against their acknowledged notifications: state, payments, transitions, flags.
    payments_by_order: dict[str, list[Any]] = {}
    for payment in Payment.objects.filter(order_id__in=order_ids).values(
        "order_id", "status", "amount_int", "currency", "payment_id"
    ):
        payments_by_order.setdefault(str(payment["order_id"]), []).append(payment)
    transitions: dict[str, list[str]] = {}
    for from_to in (
        OrderTransition.objects.filter(order_id__in=order_ids)
        .order_by("created", "id")
        .values("order_id", "to_status")
    ):
        transitions.setdefault(str(from_to["order_id"]), []).append(from_to["to_status"])
    notified = Counter(
        str(o)
        for o in Notification.objects.filter(order_id__in=order_ids).values_list(
            "order_id", flat=True
        )
    )
    flags = OrderFlag.objects.filter(order_id__in=order_ids).count()
    if flags:
        kinds = Counter(
            OrderFlag.objects.filter(order_id__in=order_ids).values_list("kind", flat=True)
        )
        problem(f"{flags} flags raised on the scenario's orders: {dict(kinds)}")
    states: Counter[str] = Counter()
    expected_paid_total = paid_total = 0
    forgery_targets_untouched = 0
    for tracked in scenario.orders.values():
        row = rows.get(tracked.reference)
        if row is None:
            continue
        if not tracked.order_id:
            problem(f"order {tracked.reference} is {row['status']}, without a transaction")
            continue
        want, want_payments = _expected_state(tracked, scenario.acks)
        states[row["status"]] += 1
        if row["status"] != want:
            problem(f"order {tracked.reference} ({tracked.plan}) is {row['status']}, not {want}")
        payments = payments_by_order.get(tracked.order_id, [])
        got = [(p["status"], p["amount_int"] == tracked.amount_int) for p in payments]
        if got != want_payments:
            problem(
                f"order {tracked.reference} ({tracked.plan}): payments {got}, not {want_payments}"
            )
        for p in payments:
            if p["status"] == "paid":
                paid_total += p["amount_int"] or 0
                if p["currency"] != "BTC":
                    problem(f"order {tracked.reference}: a payment in {p['currency']}")
        if want == "paid":
            expected_paid_total += tracked.amount_int
        want_transitions = TRANSITIONS.get((tracked.plan, want), ["awaiting_payment"])
        if transitions.get(tracked.order_id, []) != want_transitions:
            problem(
                f"order {tracked.reference}: transitions {transitions.get(tracked.order_id)}, "
                f"not {want_transitions}"
            )
        if tracked.plan == "forgery_target":
            untouched = (
                row["status"] == "awaiting_payment"
                and row["updated"] == tracked.updated
                and not payments
                and not notified[tracked.order_id]
                and row["open_flags"] == 0
            )
            forgery_targets_untouched += untouched
            if not untouched:
                problem(f"forgery target {tracked.reference} was touched")
    if paid_total != expected_paid_total:
        problem(f"paid total {paid_total}, expected {expected_paid_total}")
    payments_new = Payment.objects.count() - before.payments
    payments_expected = sum(
        len(_expected_state(t, scenario.acks)[1]) for t in scenario.orders.values()
    )
    if payments_new != payments_expected:
        problem(f"{payments_new} new payments, expected {payments_expected}")

    # Forgeries: refused and counted, per reason (oversized ones are refused before that).
    rejected_now = _rejected()
    rejected = {
        reason: rejected_now.get(reason, 0) - before.rejected.get(reason, 0)
        for reason in (RejectionReason.BAD_SIGNATURE, RejectionReason.UNKNOWN_KEY)
    }
    answered_403 = {
        reason: scenario.forgery_answers.get(f"forgery_{reason}", Counter())[403]
        for reason in (RejectionReason.BAD_SIGNATURE, RejectionReason.UNKNOWN_KEY)
    }
    if rejected != answered_403:
        problem(f"rejections counted {rejected}, forgeries answered 403 {answered_403}")
    other_reasons = {
        reason: n - before.rejected.get(reason, 0)
        for reason, n in rejected_now.items()
        if reason not in rejected and n != before.rejected.get(reason, 0)
    }
    if other_reasons:
        problem(f"rejections for other reasons: {other_reasons}")

    # Shop events (written with each change, POSTed by the Celery workers): one per change.
    events = Counter(
        (str(o), t)
        for o, t in ShopEvent.objects.filter(order_id__in=order_ids).values_list("order_id", "type")
    )
    changes = Counter(
        (order_id, f"order.{to}") for order_id, tos in transitions.items() for to in tos
    )
    if events != changes:
        extra, lost = events - changes, changes - events
        problem(f"shop events: {sum(lost.values())} missing, {sum(extra.values())} extra")
    undelivered = ShopEvent.objects.filter(
        order_id__in=order_ids, delivered_at__isnull=True
    ).count()
    if undelivered:
        problem(f"{undelivered} shop events not delivered")
    ok_attempts = Counter(
        ShopEventAttempt.objects.filter(event__order_id__in=order_ids, ok=True)
        .values("event_id")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    delivered_twice = sum(n for k, n in ok_attempts.items() if k > 1)
    if delivered_twice:
        problem(f"{delivered_twice} shop events delivered more than once")
    failed_attempts = ShopEventAttempt.objects.filter(
        event__order_id__in=order_ids, ok=False
    ).count()

    sweeps = Counter(
        ReconciliationRun.objects.filter(started__gte=before.started).values_list(
            "sweep", flat=True
        )
    )
    found_by_sweeps: Counter[str] = Counter()
    for counts in ReconciliationRun.objects.filter(started__gte=before.started).values_list(
        "counts", flat=True
    ):
        found_by_sweeps.update({k: v for k, v in (counts or {}).items() if isinstance(v, int)})

    correct = not problems and unexpected_answers == 0
    return {
        "correct": correct,
        "problems": problems,
        "unexpected_answers": unexpected_answers,
        "orders_created": len(created),
        "orders_by_status": dict(states),
        "orders_by_plan": dict(Counter(t.plan for t in scenario.orders.values() if t.order_id)),
        "notifications": {
            "distinct_sent": len(sent_bodies),
            "distinct_acknowledged": len(acked),
            "sent": sum(scenario.sends.values()),
            "acknowledged": sum(scenario.acks.values()),
            "stored": len(stored),
            "outcomes": dict(outcomes),
            "times_received_matching_acks": sum(
                1
                for body in sent_bodies
                if _digest(body) in stored
                and stored[_digest(body)]["times_received"] == scenario.acks[body]
            ),
            "times_received_out_of_range": times_off,
        },
        "payments_new": payments_new,
        "payments_expected": payments_expected,
        "paid_total_int": paid_total,
        "expected_paid_total_int": expected_paid_total,
        "forgeries": {
            "answers": {
                k: {str(s): n for s, n in v.items()} for k, v in scenario.forgery_answers.items()
            },
            "stored": forged_stored,
            "rejections_counted": rejected,
            "targets": sum(1 for t in scenario.orders.values() if t.plan == "forgery_target"),
            "targets_untouched": forgery_targets_untouched,
        },
        "shop_events": {
            "events": sum(events.values()),
            "changes": sum(changes.values()),
            "undelivered": undelivered,
            "delivered_more_than_once": delivered_twice,
            "failed_attempts": failed_attempts,
        },
        "sweeps_run_during_scenario": dict(sweeps),
        "sweeps_found": dict(found_by_sweeps),
    }


# --- running it ----------------------------------------------------------------------

# Emptied first (bench.common.PAYMENTS_TABLES): the sweeps of this benchmark's workers act
# on every row, so rows that other benchmarks of the run left would add work of theirs.


def _empty_payments_tables(infra: Infrastructure) -> None:
    if not infra.is_postgres:
        return  # SQLite: the checks count what is new instead
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(PAYMENTS_TABLES)} CASCADE")


def _api_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(username="bench-mixed-shop")
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)


def _drain(order_reference_prefix: str, seconds: float) -> dict[str, Any]:
    """Wait (bounded) until the workers delivered every shop event of the scenario's orders."""
    from payments.models import Notification, ShopEvent

    started = time.monotonic()
    pending = waiting = -1
    while time.monotonic() - started < seconds:
        pending = ShopEvent.objects.filter(
            order__reference__startswith=order_reference_prefix,
            delivered_at__isnull=True,
            given_up_at__isnull=True,
        ).count()
        waiting = Notification.objects.filter(
            order__reference__startswith=order_reference_prefix,
            outcome__in=(NotificationOutcome.PENDING, NotificationOutcome.ERROR),
        ).count()
        if pending == 0 and waiting == 0:
            break
        time.sleep(0.25)
    return {
        "seconds": round(time.monotonic() - started, 2),
        "shop_events_pending": pending,
        "notifications_pending": waiting,
    }


def _kinds_summary(kinds: dict[str, KindResult], elapsed: float) -> dict[str, Any]:
    return {kind: kinds[kind].summary(elapsed) for kind in EXPECTED if kind in kinds}


def run(infra: Infrastructure, quick: bool) -> dict[str, Any]:
    from sandbox.accounts import ensure_configured_account

    if not infra.is_postgres:
        log(f"{NAME}: not on PostgreSQL: the figures are not comparable")
    sizes = QUICK if quick else FULL
    _empty_payments_tables(infra)
    broker = infra.prepare_broker()
    token = _api_token()
    ensure_configured_account()  # the sandbox account of the service's key
    sandbox = infra.start_server("sandbox", SANDBOX, SANDBOX_ENABLED="1", CELERY_BROKER_URL=broker)
    port = free_port()
    service_url = f"http://{HOST}:{port}"
    common: dict[str, str] = {
        "CELERY_BROKER_URL": broker,
        "GATEWAY_API_URL": f"{sandbox.url}/sandbox/api/",
        "GATEWAY_PAYMENT_HOST": f"{sandbox.url}/sandbox",
        "SHOP_WEBHOOK_URL": f"{sandbox.url}/bench/minimal/",
        "SHOP_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "PAYMENTS_SWEEP_SECONDS": SWEEP_SECONDS,
    }
    service = infra.start_server("service-mixed", SERVICE, access_log=False, port=port, **common)
    celery: list[CeleryProcess] = []
    try:
        for n in range(1, WORKERS + 1):
            celery.append(
                infra.start_worker(
                    f"worker{n}",
                    concurrency=WORKER_CONCURRENCY,
                    public_base_url=service_url,
                    **common,
                )
            )
        celery.append(infra.start_beat(public_base_url=service_url, **common))
        return _run(infra, sizes, service_url, token, sandbox, service, celery)
    finally:
        for process in celery:
            infra.stop_celery(process)


def _run(
    infra: Infrastructure,
    sizes: Sizes,
    service_url: str,
    token: str,
    sandbox: Any,
    service: Any,
    celery: list[CeleryProcess],
) -> dict[str, Any]:
    scenario = Scenario(service_url, token)
    minimal = [Item("GET", "/bench/minimal/", headers=(("User-Agent", "merchant-bench"),))]
    pg = infra.postgres_meter()
    others = {"sandbox": sandbox}
    before = Before.take()
    mixed_phases: list[Phase] = []
    minimal_phases: list[Phase] = []
    celery_cpu = 0.0
    rounds: list[dict[str, Any]] = []
    unexpected = 0
    with LoadGenerator(HOST, service.port, processes=PROCESSES) as gen:

        def send_minimal(seconds: float) -> LoadResult:
            return gen.closed_loop(
                minimal, connections=sizes.connections, expect=OK, repeat=True, duration=seconds
            )

        def send_round(items: list[Item], seconds: float | None) -> LoadResult:
            return gen.closed_loop(
                items,
                connections=sizes.connections,
                expect=OK,  # each item carries its own expectation
                duration=seconds,
                record_outcomes=True,
            )

        log(f"{NAME}: warm-up ({sizes.warmup_creates} orders, reads)")
        require_success("warm-up", send_minimal(1.0))
        items, metas = scenario.build_round(sizes.warmup_creates)
        began = time.monotonic()
        warm = send_round(items, None)
        scenario.record(items, metas, warm)
        unexpected += warm.errors
        rate = warm.ok / max(time.monotonic() - began, 0.1)
        if warm.errors:
            log(f"{NAME}: warm-up: {warm.errors} unexpected answers, e.g. {warm.error_samples[:2]}")
        for round_ in range(sizes.rounds):
            phase = measure_round(
                f"minimal[{round_}]",
                service,
                partial(send_minimal, sizes.minimal_seconds),
                benchmark=NAME,
                others=others,
                postgres=pg,
            )
            minimal_phases.append(phase)
            wait_for_idle()
            # More requests than the round's time allows at the rate seen so far (3.5 or so
            # per order created): the round ends on time, and what was not sent is
            # dropped (creates, reads, forgeries) or sent in a later round (notifications).
            creates = max(8, int(rate * sizes.seconds_per_round * 2 / 3.5))
            items, metas = scenario.build_round(creates)
            celery_before = CpuSnapshot.of([pid for p in celery for pid in p.pids()])
            phase = measure(
                f"mixed[{round_}]",
                service,
                partial(send_round, items, sizes.seconds_per_round),
                others=others,
                postgres=pg,
                allow_errors=True,
            )
            celery_cpu += CpuSnapshot.of([pid for p in celery for pid in p.pids()]).since(
                celery_before
            )
            sent = scenario.record(items, metas, phase.load)
            unexpected += phase.load.errors
            rate = phase.load.requests_per_second or rate
            log(
                f"{NAME}: {progress(phase)}; {sent} of {len(items)} sent"
                + (
                    f", {phase.load.errors} UNEXPECTED e.g. {phase.load.error_samples[:2]}"
                    if phase.load.errors
                    else ""
                )
            )
            mixed_phases.append(phase)
            rounds.append(
                {
                    "requests": phase.load.requests,
                    "requests_per_s": round(phase.load.requests_per_second, 1),
                    "planned": len(items),
                    "kinds": {k: v.ok + v.errors for k, v in phase.load.by_kind.items()},
                }
            )

        wait_for_idle()
        open_loop, open_unexpected = _open_loop(
            gen, scenario, sizes, _combine(mixed_phases), service, others, pg, celery
        )
        unexpected += open_unexpected

    log(f"{NAME}: waiting for the workers to deliver the shop events")
    drained = _drain(REFERENCE_PREFIX, sizes.drain_seconds)
    for process in celery:
        infra.stop_celery(process)
    infra.stop_server(service)
    infra.stop_server(sandbox)
    checks = check_database(scenario, before, unexpected)
    if not checks["correct"]:
        log(f"{NAME}: DATABASE CHECK FAILED: {checks['problems']}")

    mixed_load = _combine(mixed_phases)
    base_load = _combine(minimal_phases)
    ratio = mixed_load.requests_per_second / base_load.requests_per_second
    elapsed = mixed_load.elapsed
    kinds = merge_kinds(p.load.by_kind for p in mixed_phases)
    mixed_summary = mixed_load.summary()
    mixed_summary["server_cpu_s"] = round(sum(p.server_cpu for p in mixed_phases), 3)
    mixed_summary["sandbox_cpu_s"] = round(
        sum(p.other_cpu.get("sandbox", 0.0) for p in mixed_phases), 3
    )
    if any("postgres" in p.other_cpu for p in mixed_phases):
        mixed_summary["postgres_cpu_s"] = round(
            sum(p.other_cpu.get("postgres", 0.0) for p in mixed_phases), 3
        )
    mixed_summary["celery_cpu_s"] = round(celery_cpu, 3)
    return {
        "ratio": round(ratio, 3),
        "target": "no numeric target in issue 9: correct under load (database_check.correct), "
        "requests/s, latency per kind and the ratio reported",
        "baseline": "GET /bench/minimal/: a plain Django function view answering 'ok' "
        "(text/plain), same server and run, same connections, phases alternating with "
        "the mixed rounds",
        "meets_target": bool(checks["correct"]),
        "measured": {
            "what": "closed loop, mixed requests in random order; ratio = mixed requests/s "
            "(answered as expected, 403/413 of forgeries included) / minimal requests/s",
            "server": f"{SERVICE.describe()}, DJANGO_DEBUG=0, {infra.database}",
            "sandbox": f"separate server ({SANDBOX.describe()}) on loopback",
            "celery": f"{WORKERS} workers (prefork x {WORKER_CONCURRENCY}) and beat on "
            f"{infra.broker_url}; sweeps {SWEEP_SECONDS}; shop webhooks to the sandbox "
            "server's /bench/minimal/",
            "connections": sizes.connections,
            "rounds": sizes.rounds,
            "seconds_per_round": sizes.seconds_per_round,
            "mixed": mixed_summary,
            "minimal": base_load.summary(),
            "per_kind": _kinds_summary(kinds, elapsed),
            "per_round": rounds,
            "latency_all_ms": latency_summary(mixed_load.latencies),
            "open_loop": open_loop,
            "drain": drained,
            "database_check": checks,
        },
    }


def _open_loop(
    gen: LoadGenerator,
    scenario: Scenario,
    sizes: Sizes,
    closed: LoadResult,
    service: Any,
    others: dict[str, Any],
    pg: Any,
    celery: list[CeleryProcess],
) -> tuple[dict[str, Any], int]:
    """The mix at a fixed rate below capacity: latency from the due times, per kind.

    Returns the figures and the number of unexpected answers (for the database check).
    """
    closed_rps = closed.requests_per_second
    rate = max(OPEN_LOOP_MIN_RATE, round(OPEN_LOOP_FRACTION * closed_rps))
    seconds = sizes.open_loop_seconds
    total = int(rate * seconds)
    # Planned like a closed round (about twice what is sent, 3.5 or so requests per order
    # created), so that the first `total` requests of the shuffled round are the same kind
    # of mix; the rest is never sent (notifications stay pending, orders are never made).
    items, metas = scenario.build_round(max(8, math.ceil(total / 1.75)))
    if len(items) < total:
        raise BenchError(f"open loop: {len(items)} requests planned, {total} needed")
    due: list[float] = []
    for i, meta in enumerate(metas[:total]):
        # The concurrent copies follow their original: the same due time, sent together.
        concurrent = meta.kind == "ipn_duplicate_concurrent" and bool(due)
        due.append(due[-1] if concurrent else i / rate)
    log(
        f"{NAME}: open loop, {rate} req/s ({OPEN_LOOP_RULE}: closed loop {closed_rps:.1f} "
        f"req/s) for {seconds:.0f} s, {total} requests"
    )

    def send() -> LoadResult:
        return gen.open_loop(
            items,
            rate=rate,
            duration=seconds,
            connections=sizes.connections,
            expect=OK,  # each item carries its own expectation
            record_outcomes=True,
            due=due,
        )

    celery_before = CpuSnapshot.of([pid for p in celery for pid in p.pids()])
    phase = measure("mixed_open_loop", service, send, others=others, postgres=pg, allow_errors=True)
    celery_cpu = CpuSnapshot.of([pid for p in celery for pid in p.pids()]).since(celery_before)
    load = phase.load
    sent = scenario.record(items, metas, load)
    log(
        f"{NAME}: {progress(phase)}; {sent} of {total} sent"
        + (f", {load.errors} UNEXPECTED e.g. {load.error_samples[:2]}" if load.errors else "")
    )

    scheduled = Counter(meta.kind for meta in metas[:total])
    sent_by_kind: Counter[str] = Counter()
    answered_by_kind: Counter[str] = Counter()
    for index, status, _ in item_outcomes(items, PROCESSES, load.outcomes_per_job):
        sent_by_kind[metas[index].kind] += 1
        answered_by_kind[metas[index].kind] += status != 0
    per_kind: dict[str, Any] = {}
    for kind in EXPECTED:
        if not scheduled[kind]:
            continue
        found = load.by_kind.get(kind, KindResult())
        dropped = scheduled[kind] - sent_by_kind[kind]
        per_kind[kind] = {
            "scheduled": scheduled[kind],
            "sent": sent_by_kind[kind],
            "answered": answered_by_kind[kind],
            "ok": found.ok,
            "errors": found.errors,
            "dropped": dropped,
            # Unexpected answers and requests never sent count as infinitely slow (null).
            "latency_ms": latency_summary(found.latencies, unfinished=found.errors + dropped),
            "statuses": {str(k): v for k, v in sorted(found.statuses.items())},
        }
        if found.error_samples:
            per_kind[kind]["error_samples"] = found.error_samples
    out: dict[str, Any] = {
        "what": "open loop after the closed-loop rounds: the same kind of mix (built like a "
        "round) at a fixed rate; request i due at start + i / rate (the three concurrent "
        "copies of a notification share one due time); latency from the due time (no "
        "coordinated omission); unexpected answers and requests never sent count as "
        "infinitely slow (a percentile they reach is null)",
        "rate_per_s": rate,
        "rate_rule": OPEN_LOOP_RULE,
        "closed_loop_requests_per_s": round(closed_rps, 1),
        "duration_s": seconds,
        "connections": sizes.connections,
        "scheduled": total,
        "sent": sent,
        "answered": sum(answered_by_kind.values()),
        "ok": load.ok,
        "errors": load.errors,
        "dropped": total - sent,
        "elapsed_s": round(load.elapsed, 3),
        "requests_per_s": round(load.requests_per_second, 1),
        "latency_ms": latency_summary(load.latencies, unfinished=load.errors + total - sent),
        "per_kind": per_kind,
        "generator_max_send_lag_ms": round(load.max_send_lag * 1000, 2),
        "generator_cpu_s": round(load.generator_cpu_seconds, 3),
        "server_cpu_s": round(phase.server_cpu, 3),
        "sandbox_cpu_s": round(phase.other_cpu.get("sandbox", 0.0), 3),
        "celery_cpu_s": round(celery_cpu, 3),
    }
    if "postgres" in phase.other_cpu:
        out["postgres_cpu_s"] = round(phase.other_cpu["postgres"], 3)
    if load.elapsed > 0 and load.machine_busy:
        out["machine_busy_cores"] = round(load.machine_busy / load.elapsed, 2)
    if load.error_samples:
        out["error_samples"] = load.error_samples
    return out, load.errors


def _combine(phases: list[Phase]) -> LoadResult:
    from bench.common import combine

    if not phases:
        raise BenchError("no phase ran")
    return combine("x", phases).load
