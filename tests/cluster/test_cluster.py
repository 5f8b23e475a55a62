"""Several machines: two web nodes, two worker nodes and a beat, one of each kind killed mid-run.

The whole mixed run (tests/cluster/workload.py) on each configuration: PostgreSQL with
RabbitMQ, PostgreSQL with Redis, and PostgreSQL through PgBouncer in transaction mode with
Redis. Once the cluster has settled, what must hold is read from the database (the
service's tables and the sandbox gateway's, which share it) and from the recorders:

- every acknowledged IPN is applied exactly once: one Payment per gateway payment, as the
  gateway has it, and each order's paid amount is what the gateway credited;
- every order is where the gateway's view puts it, and never moved backwards;
- every shop event the service recorded reached the shop, with the same bytes each time;
- the gateway accepted every merchant/order/create nonce, in increasing order.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest
from django.db.models import Sum

from payments.models import (
    Notification,
    Order,
    OrderFlag,
    Payment,
    ShopEvent,
    ShopEventDelivery,
)
from payments.shop_event_signing import EVENT_ID_HEADER
from payments.states import can_transition
from sandbox.accounts import ensure_configured_account
from sandbox.models import IpnAttempt, IpnDelivery, LedgerEntry, SandboxOrder, SandboxPayment
from tests.cluster.conftest import CONFIGURATIONS, SUMMARIES, Cluster, Configuration
from tests.cluster.workload import ORDERS, MixedRun, RunLog
from tests.factories import api_token_key

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SETTLE_TIMEOUT = 100.0
# How far each status is along an order's life: a transition must go further, never back.
RANK = {"created": 0, "failed": 1, "awaiting_payment": 1, "confirming": 2, "paid": 3,
        "cancelled": 3}  # fmt: skip


def _api_token() -> str:
    return api_token_key(name="cluster-shop")


def expected_status(sandbox_order: SandboxOrder) -> str:
    """The service's status for the gateway's view of the order."""
    if sandbox_order.status == SandboxOrder.Status.PAID:
        return "paid"
    if sandbox_order.status == SandboxOrder.Status.CANCELLED:
        return "cancelled"
    if sandbox_order.payments.filter(status=SandboxPayment.Status.PARTIAL).exists():
        return "confirming"  # bitcoins sent for the whole price, not yet confirmed
    return "awaiting_payment"


def outstanding(log: RunLog) -> list[str]:
    """What is not settled yet; empty when the cluster has nothing left to do."""
    left = []
    undelivered = IpnDelivery.objects.filter(delivered_at__isnull=True).count()
    if undelivered:
        left.append(f"{undelivered} IPN(s) not acknowledged by the service")
    pending = Notification.objects.filter(outcome__in=["pending", "error"]).count()
    if pending:
        left.append(f"{pending} notification(s) pending or in error")
    events = ShopEventDelivery.objects.filter(delivered_at__isnull=True).count()
    if events:
        left.append(f"{events} shop event delivery(ies) not delivered")
    stuck = list(Order.objects.filter(status="created").values_list("reference", flat=True))
    if stuck:
        left.append(f"orders still `created`: {stuck}")
    for created in log.created.values():
        order = Order.objects.get(pk=created.order_id)
        want = expected_status(SandboxOrder.objects.get(transaction=created.transaction))
        if order.status != want:
            left.append(f"{created.reference}: {order.status}, the gateway says {want}")
    return left


def settle(cluster: Cluster, log: RunLog) -> float:
    """Wait until nothing is outstanding; what was, 5 s in, goes into the summary."""
    started = time.monotonic()
    left = outstanding(log)
    while left and time.monotonic() - started < SETTLE_TIMEOUT:
        cluster.assert_running()
        time.sleep(0.5)
        left = outstanding(log)
        if left and not log.slow_to_settle and time.monotonic() - started > 5:
            log.slow_to_settle = left[:3]
    assert not left, (
        f"not settled {SETTLE_TIMEOUT} s after the run: " + "; ".join(left[:12])
        + f" (logs in {cluster.logs})"
    )  # fmt: skip
    return time.monotonic() - started


@pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=lambda c: c.name)
def test_a_cluster_with_a_web_node_and_a_worker_killed_applies_everything_once(
    start_cluster: Callable[[Configuration], Cluster], configuration: Configuration
) -> None:
    started = time.monotonic()
    token = _api_token()
    ensure_configured_account()  # the sandbox account of the service's key
    cluster = start_cluster(configuration)
    startup = time.monotonic() - started

    log = MixedRun(cluster, token).execute()
    assert not log.client_errors, log.client_errors
    assert not log.payer_errors, log.payer_errors
    assert len(log.created) == ORDERS
    assert len(log.kills) == 2, "the nodes were not killed mid-run"
    assert set(log.duplicate_answers) == {"200 b'[OK]'"}, log.duplicate_answers
    settled = settle(cluster, log)
    cluster.assert_running()

    assert_orders_match_the_gateway(log)
    assert_notifications_applied_once(log)
    events = assert_events_delivered(cluster)
    nonces = assert_nonces_accepted_in_order(cluster)
    SUMMARIES.append(summary(cluster, log, events, nonces, startup, settled, started))
    print(SUMMARIES[-1])


def assert_orders_match_the_gateway(log: RunLog) -> None:
    """Each order as the gateway has it, paid what it credited, never moved backwards."""
    for created in log.created.values():
        order = Order.objects.get(pk=created.order_id)
        sandbox_order = SandboxOrder.objects.get(transaction=created.transaction)
        assert order.status == expected_status(sandbox_order), created
        credited = LedgerEntry.objects.filter(
            transaction=sandbox_order.transaction, type=LedgerEntry.Type.IN
        ).aggregate(total=Sum("value_int"))["total"]
        paid = order.payments.filter(status=Payment.Status.PAID).aggregate(total=Sum("amount_int"))[
            "total"
        ]
        assert (paid or 0) == (credited or 0), f"{created.reference}: {paid} != {credited}"
        assert_forward_only(order)
    # A creation cut by the kill is failed on the client's retry, flagged: its order (if the
    # gateway made one) is never paid and nothing else is failed.
    for order in Order.objects.exclude(pk__in=[c.order_id for c in log.created.values()]):
        assert order.status == "failed", order
        assert order.flags.filter(kind=OrderFlag.Kind.GATEWAY_UNCERTAIN).exists(), order
        assert not order.payments.exists()
    # What the gateway created for those cut creations: unknown to the service, never paid.
    known = Order.objects.exclude(transaction=None).values_list("transaction", flat=True)
    orphans = SandboxOrder.objects.exclude(transaction__in=list(known))
    assert orphans.count() <= Order.objects.filter(status="failed").count()
    assert not SandboxPayment.objects.filter(order__in=orphans).exists()
    unexpected = OrderFlag.objects.exclude(kind=OrderFlag.Kind.GATEWAY_UNCERTAIN)
    assert not unexpected.exists(), list(unexpected.values_list("kind", "detail"))


def assert_forward_only(order: Order) -> None:
    steps = list(order.transitions.values_list("from_status", "to_status"))
    assert steps, order
    assert steps[0][0] == "created", steps
    for (_, before), (after_from, _) in itertools.pairwise(steps):
        assert before == after_from, f"{order.reference}: history broken: {steps}"
    for source, target in steps:
        assert can_transition(source, target), steps
        assert RANK[target] > RANK[source], f"{order.reference} moved backwards: {steps}"
    assert steps[-1][1] == order.status


def assert_notifications_applied_once(log: RunLog) -> None:
    """One Payment per gateway payment, as the gateway has it; every IPN stored and applied."""
    for delivery in IpnDelivery.objects.all():
        digest = hashlib.sha256(delivery.body_bytes).hexdigest()
        stored = Notification.objects.get(body_sha256=digest)
        assert stored.outcome in ("applied", "duplicate", "stale"), (stored, stored.detail)
    for sandbox_payment in SandboxPayment.objects.filter(
        order__transaction__in=[c.transaction for c in log.created.values()]
    ):
        payment = Payment.objects.get(payment_id=sandbox_payment.payment_id)
        assert payment.status == sandbox_payment.status, (payment, sandbox_payment)
        if sandbox_payment.status == SandboxPayment.Status.PAID:
            assert payment.amount_int == sandbox_payment.amount_int
    for body in log.duplicated_bodies:
        stored = Notification.objects.get(body_sha256=hashlib.sha256(body).hexdigest())
        assert stored.times_received >= 3, stored  # the gateway's, and one per web node


def assert_events_delivered(cluster: Cluster) -> dict[str, int]:
    """Every recorded event reached the shop, always the same bytes; one per order change."""
    received: dict[str, list[bytes]] = defaultdict(list)
    for request in cluster.shop.received:
        received[request.headers[EVENT_ID_HEADER]].append(request.body)
    events = {str(e.pk): e for e in ShopEvent.objects.all()}
    # One endpoint (SHOP_WEBHOOK_URL's): one delivery per event.
    attempts = dict(ShopEventDelivery.objects.values_list("event_id", "attempts"))
    assert set(received) == set(events), "events recorded but not received, or the reverse"
    duplicates = 0
    for event_id, bodies in received.items():
        event = events[event_id]
        assert set(bodies) == {event.body.encode()}, f"event {event_id} sent with other bytes"
        duplicates += len(bodies) - 1
        # A second receipt is allowed only for an attempt cut by the SIGKILL: the killed
        # worker had POSTed it but died before recording the answer, so the event's claim
        # ran out and it was sent again (at least once). Each receipt is one claimed attempt.
        assert len(bodies) <= attempts[event.pk], f"event {event_id} received more than sent"
    for order in Order.objects.all():
        moves = order.transitions.values_list("to_status", flat=True)
        changes = Counter(f"order.{status}" for status in moves)
        sent = Counter(
            e.type for e in events.values() if e.order_id == order.pk and e.type != "order.flagged"
        )
        assert sent == changes, f"{order.reference}: events {sent}, changes {changes}"
    return {"events": len(events), "duplicate_receipts": duplicates}


def assert_nonces_accepted_in_order(cluster: Cluster) -> dict[str, int]:
    calls = list(cluster.tap.calls)
    refused = [c for c in calls if (c.status, c.result) != (200, "success")]
    assert not refused, f"the gateway refused merchant/order/create calls: {refused}"
    nonces = [c.nonce for c in sorted(calls, key=lambda c: c.seq)]
    backwards = [(a, b) for a, b in itertools.pairwise(nonces) if b <= a]
    assert not backwards, f"nonces not increasing in arrival order: {backwards}"
    return {"calls": len(calls), "refused": len(refused)}


def summary(
    cluster: Cluster, log: RunLog, events: dict[str, int], nonces: dict[str, int],
    startup: float, settled: float, started: float,
) -> str:  # fmt: skip
    statuses = Counter(Order.objects.values_list("status", flat=True))
    recorded = IpnAttempt.objects.count()
    # Claims count an attempt the SIGKILL cut before it could record its answer, too.
    claims = IpnDelivery.objects.aggregate(total=Sum("attempts"))["total"]
    return (
        f"{cluster.configuration.name}: orders {len(log.created)} "
        f"{dict(sorted(statuses.items()))}, "
        f"client retries {dict(log.retries())}; IPNs {IpnDelivery.objects.count()} "
        f"({claims} attempts, {recorded} recorded), "
        f"duplicates sent {sum(log.duplicate_answers.values())}; "
        f"shop events {events['events']} (duplicate receipts {events['duplicate_receipts']}); "
        f"order/create nonces {nonces['calls']} increasing, {nonces['refused']} refused; "
        f"kills {log.kills}; balancer {cluster.balancer.connections} connections, "
        f"{cluster.balancer.failovers} failovers; startup {startup:.1f} s, "
        f"settled in {settled:.1f} s (5 s in: {log.slow_to_settle or 'done'}), "
        f"total {time.monotonic() - started:.1f} s"
    )
