"""The sweeps as services: expiry, stuck orders, pending notifications, dry runs, records."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments.models import Notification, Order, Payment, ReconciliationRun
from payments.services import notifications
from payments.services.runs import reconciliation_run
from payments.services.sweeps import (
    notifications_apply_pending,
    orders_expire_due,
    orders_flag_stuck,
)
from payments.services.webhook_endpoints import webhook_endpoint_settings_in_step
from payments.signals import order_paid
from payments.testing import ipn_body, post_ipn

pytestmark = pytest.mark.django_db


def past(seconds: int = 60) -> Any:
    return timezone.now() - timedelta(seconds=seconds)


def test_expire_moves_only_due_unpaid_orders(make_order: Any) -> None:
    due = [make_order(deadline=past()) for _ in range(7)]
    fresh = make_order(deadline=timezone.now() + timedelta(hours=1))
    paid = make_order(deadline=past(), status="paid")
    confirming = make_order(deadline=past(), status="confirming")

    counts = orders_expire_due(chunk_size=3)

    assert counts["expired"] == 7
    for order in due:
        order.refresh_from_db()
        assert order.status == "expired"
        assert [t.to_status for t in order.transitions.all()] == ["expired"]
    for order, status in ((fresh, "awaiting_payment"), (paid, "paid"), (confirming, "confirming")):
        order.refresh_from_db()
        assert order.status == status


def test_expire_twice_changes_nothing_the_second_time(make_order: Any) -> None:
    for _ in range(4):
        make_order(deadline=past())
    orders_expire_due()
    again = orders_expire_due()
    assert again["expired"] == 0
    assert Order.objects.filter(transitions__to_status="expired").count() == 4


def test_dry_run_counts_and_changes_nothing(make_order: Any) -> None:
    order = make_order(deadline=past())
    counts = orders_expire_due(dry_run=True)
    order.refresh_from_db()
    assert counts["examined"] == 1 and counts["expired"] == 0
    assert order.status == "awaiting_payment"


def test_late_payment_after_expiry_still_pays(client: Client, make_order: Any) -> None:
    order = make_order(deadline=past())
    orders_expire_due()
    post_ipn(
        client, ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    )
    order.refresh_from_db()
    assert order.status == "paid"
    assert list(order.flags.values_list("kind", flat=True)) == ["late"]


def test_stuck_confirming_orders_are_flagged_once(make_order: Any, settings: Any) -> None:
    settings.PAYMENTS_CONFIRMING_TTL = 60
    stuck = make_order(status="confirming")
    Order.objects.filter(pk=stuck.pk).update(updated=past(3600))
    recent = make_order(status="confirming")

    first = orders_flag_stuck()
    second = orders_flag_stuck()

    assert first["flagged"] == 1 and second["flagged"] == 0
    assert list(stuck.flags.values_list("kind", flat=True)) == ["stuck"]
    assert not recent.flags.exists()


def test_pending_notifications_are_applied(make_order: Any) -> None:
    order = make_order()
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    # A notification stored but never applied (the process died after storing it).
    stored = Notification.objects.create(
        body=body, body_sha256="x" * 64, received_at=past(600), outcome="pending"
    )

    counts = notifications_apply_pending()

    stored.refresh_from_db()
    order.refresh_from_db()
    assert counts["examined"] == 1
    assert stored.outcome == "applied"
    assert order.status == "paid"
    assert notifications_apply_pending()["examined"] == 0


def test_young_pending_notifications_are_left_to_their_request(make_order: Any) -> None:
    order = make_order()
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    Notification.objects.create(body=body, body_sha256="y" * 64, outcome="pending")
    assert notifications_apply_pending()["examined"] == 0


def test_runs_are_recorded(make_order: Any) -> None:
    make_order(deadline=past())
    run = reconciliation_run(sweep="expire")
    assert run.status == "done" and run.finished is not None
    assert run.counts == {"examined": 1, "expired": 1}
    assert ReconciliationRun.objects.count() == 1


def test_replay_command_is_idempotent(make_order: Any, capsys: Any) -> None:
    order = make_order()
    post_ipn(
        Client(),
        ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int),
    )
    note = Notification.objects.get()

    call_command("replay_notifications", "--ids", str(note.pk))

    order.refresh_from_db()
    assert order.status == "paid"
    assert order.payments.count() == 1 and order.transitions.count() == 1
    assert "duplicate: 1" in capsys.readouterr().out


def test_replay_command_names_unknown_ids() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no notification with id 999"):
        call_command("replay_notifications", "--ids", "999")


def test_reconcile_command_prints_a_summary(make_order: Any, capsys: Any) -> None:
    make_order(deadline=past())
    call_command("reconcile", "--sweep", "expire", "--sweep", "stuck")
    out = capsys.readouterr().out
    assert "expire" in out and "expired=1" in out
    assert "stuck" in out


def test_replaying_a_flagged_notification_does_not_flag_twice(make_order: Any) -> None:
    order = make_order(data="order=1")
    post_ipn(
        Client(),
        ipn_body(
            transaction=order.transaction, status="paid", amount_int=order.amount_int, data="x"
        ),
    )
    call_command("replay_notifications", "--ids", str(Notification.objects.get().pk))
    assert list(order.flags.values_list("kind", flat=True)) == ["data_mismatch"]


def _stored_paid(order: Order, n: int) -> Notification:
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    return Notification.objects.create(
        body=body, body_sha256=f"{n}" * 64, received_at=past(600), outcome="pending"
    )


def test_a_chunk_is_applied_in_one_savepoint_with_its_writes_together(
    make_order: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Its orders locked with their payments in one statement, and each kind of write made
    once for the chunk, not once per notification."""
    with django_capture_on_commit_callbacks(execute=True):  # the settings' endpoint in step
        webhook_endpoint_settings_in_step()
    orders = [make_order() for _ in range(3)]
    for n, order in enumerate(orders):
        _stored_paid(order, n)

    with CaptureQueriesContext(connection) as captured:
        counts = notifications_apply_pending(chunk_size=3)

    assert counts["outcome:applied"] == 3
    # An executemany is logged once, as "<n> times: <statement>".
    sql = [q["sql"].split(" times: ")[-1] for q in captured.captured_queries]

    def statements(start: str, table: str) -> list[int]:
        head = f'{start} "payments_{table}"' if start != "SELECT" else f'FROM "payments_{table}" '
        return [i for i, s in enumerate(sql) if s.startswith(start) and head in s]

    [lock] = statements("SELECT", "order")  # the orders locked, however many
    assert len(statements("SELECT", "payment")) == 1  # and their payments read
    assert len(statements("INSERT INTO", "payment")) == 1
    assert len(statements("UPDATE", "order")) == 1
    assert len(statements("INSERT INTO", "ordertransition")) == 1
    [outcomes] = statements("UPDATE", "notification")
    assert not [s for s in sql[lock:outcomes] if s.startswith("SAVEPOINT")], "one savepoint"
    assert Payment.objects.count() == 3


def test_a_failure_in_a_chunk_rolls_back_its_first_pass_and_stores_only_that_error(
    make_order: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    orders = [make_order() for _ in range(3)]
    for n, order in enumerate(orders):
        _stored_paid(order, n)
    broken = orders[1].transaction
    real = notifications.HANDLERS["paid"]

    def paid_unless_broken(*, batch: Any, order: Order, message: Any) -> tuple[str, str]:
        if order.transaction == broken:
            raise RuntimeError("a bug in applying")
        return real(batch=batch, order=order, message=message)

    monkeypatch.setitem(notifications.HANDLERS, "paid", paid_unless_broken)
    paid: list[Order] = []
    order_paid.connect(lambda sender, order, **kw: paid.append(order), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            counts = notifications_apply_pending(chunk_size=3)
    finally:
        order_paid.disconnect(dispatch_uid="t")

    assert counts == {"examined": 3, "outcome:applied": 2, "outcome:error": 1}
    outcomes = dict(Notification.objects.values_list("order__transaction", "outcome"))
    assert outcomes[orders[0].transaction] == outcomes[orders[2].transaction] == "applied"
    failed = Notification.objects.get(outcome="error")
    assert failed.detail == "RuntimeError: a bug in applying"
    for order in (orders[0], orders[2]):  # applied once: the first pass left nothing behind
        order.refresh_from_db()
        assert order.status == "paid"
        assert list(order.transitions.values_list("to_status", flat=True)) == ["paid"]
        assert order.payments.count() == 1
    orders[1].refresh_from_db()
    assert orders[1].status == "awaiting_payment" and not orders[1].payments.exists()
    assert sorted(o.pk for o in paid) == sorted([orders[0].pk, orders[2].pk])


def test_a_chunk_keeps_each_orders_notifications_in_arrival_order(make_order: Any) -> None:
    """Applied together, one order's partial still comes before its paid, each written
    before the next is decided (its shop event shows the order as that one left it)."""
    x, y = make_order(), make_order()
    payment = uuid.uuid4()
    bodies = [
        ipn_body(transaction=x.transaction, status="partial", payment_id=payment,
                 amount_pending=x.amount_int, amount_total=x.amount_int),
        ipn_body(transaction=y.transaction, status="paid", amount_int=y.amount_int),
        ipn_body(transaction=x.transaction, status="paid", payment_id=payment,
                 amount_int=x.amount_int),
    ]  # fmt: skip
    for n, body in enumerate(bodies):
        Notification.objects.create(
            body=body, body_sha256=f"{n}" * 64, received_at=past(600), outcome="pending"
        )

    counts = notifications_apply_pending(chunk_size=3)

    assert counts["outcome:applied"] == 3
    assert list(x.transitions.values_list("to_status", flat=True)) == ["confirming", "paid"]
