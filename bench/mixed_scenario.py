"""mixed_load's scenario: the requests of each round, and its record of what came back.

An order gets a plan when created (PLANS); its notifications are built once the
gateway's transaction is known, and each round sends the next one of every
order, with concurrent and later duplicates, forgeries against orders nothing
else touches, and reads. `Scenario.record` reads the answers, so that
bench.mixed_checks can compare the database with what the clients were told.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.urls import reverse

from bench.load import Expect, Item, LoadResult, item_outcomes
from payments.choices import IpnStatus
from payments.ipn import ACK as IPN_ACK
from payments.ipn import MAX_BODY_BYTES
from payments.models import Order
from payments.testing import IPN_PATH, ipn_body, signed_headers

PROCESSES = 2  # the load generator's processes (its outcomes come per process)
REFERENCE_PREFIX = "mixed-"
OVERSIZED_BYTES = MAX_BODY_BYTES + 512  # refused unread (413)
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

ACK = Expect(200, IPN_ACK)
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
        item = Item("POST", reverse("api-orders"), body, headers, "order_create", CREATED)
        return item, Meta("order_create", reference)

    @staticmethod
    def _ipn(body: bytes, kind: str) -> Item:
        return Item("POST", IPN_PATH, body, tuple(signed_headers(body).items()), kind, ACK)

    def _forgery(self, target: Tracked, kind: str) -> tuple[Item, Meta]:
        data = "x" * OVERSIZED_BYTES if kind == "forgery_oversized" else None
        body = ipn_body(
            transaction=target.transaction,
            status=IpnStatus.PAID,
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
        item = Item("POST", IPN_PATH, body, tuple(headers.items()), kind, EXPECTED[kind])
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
                path = reverse("api-order", args=[tracked.order_id])
            else:
                meta = Meta("read_list")
                path = reverse("api-orders")
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
                tracked.bodies = _plan_bodies(tracked)


def _plan_bodies(tracked: Tracked) -> list[bytes]:
    """The notifications the gateway sends for the order's plan, in order (one payment)."""
    payment_id = uuid.uuid4()
    t, amount = tracked.transaction, tracked.amount_int
    if tracked.plan == "paid":
        return [
            ipn_body(transaction=t, status=IpnStatus.PAID, payment_id=payment_id, amount_int=amount)
        ]
    if tracked.plan == "partial_then_paid":
        partial = ipn_body(
            transaction=t,
            status=IpnStatus.PARTIAL,
            payment_id=payment_id,
            amount_pending=amount,
            amount_valid=0,
        )
        paid = ipn_body(
            transaction=t, status=IpnStatus.PAID, payment_id=payment_id, amount_int=amount
        )
        return [partial, paid]
    if tracked.plan == "cancelled":
        return [ipn_body(transaction=t, status=IpnStatus.CANCELLED, payment_id=payment_id)]
    return []
