"""The review admin's actions, searches, filters, CSV export, counting and dashboard.

Permissions per role are in test_admin_permissions.py; the browser walk in tests/browser/.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments.admin.csv import csv_cell
from payments.admin.pagination import EstimatedCountPaginator
from payments.exceptions import CommentRequired, TooManySelected
from payments.models import (
    DashboardSummary,
    FlagReview,
    Notification,
    Order,
    OrderFlag,
    Payment,
    ReconciliationRun,
    RejectedNotification,
)
from payments.services import order_flag
from payments.services.dashboard_summary import dashboard_summary_refresh
from payments.services.review import (
    MAX_SELECTED,
    flags_mark_reviewed,
    orders_reconcile,
)
from payments.testing import ipn_body, post_ipn
from tests.conftest import is_postgres

pytestmark = pytest.mark.django_db

ORDERS = "/admin/payments/order/"
NOTIFICATIONS = "/admin/payments/notification/"
PAYMENTS = "/admin/payments/payment/"
FLAGS = "/admin/payments/orderflag/"
DASHBOARD = "/admin/payments/order/dashboard/"


@pytest.fixture
def boss() -> Any:
    return get_user_model().objects.create_superuser("boss", password="a-long-password-1")


@pytest.fixture
def boss_client(client: Client, boss: Any) -> Client:
    client.force_login(boss)
    return client


def flagged_order(make_order: Any, **fields: Any) -> tuple[Order, OrderFlag]:
    order = make_order(**fields)
    flag = order_flag(order_id=order.pk, kind=OrderFlag.Kind.OVERPAID, detail="paid too much")
    order.refresh_from_db()
    return order, flag


def stored_pending(order: Order, **fields: Any) -> Notification:
    """A notification stored but never applied (the process died before applying it)."""
    body = ipn_body(
        transaction=order.transaction, status="paid", amount_int=order.amount_int, **fields
    )
    return Notification.objects.create(
        body=body, body_sha256=uuid.uuid4().hex + uuid.uuid4().hex, outcome="pending"
    )


def post_action(
    client: Client, url: str, action: str, ids: list[Any], *, follow: bool = False
) -> Any:
    data = {"action": action, "_selected_action": [str(pk) for pk in ids], "index": "0"}
    return client.post(url, data, follow=follow)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- the flag counter and the review service ------------------------------------------


def test_a_flag_counts_up_its_order_once(make_order: Any) -> None:
    order, flag = flagged_order(make_order)
    assert order.open_flags == 1
    again = order_flag(order_id=order.pk, kind=flag.kind, detail=flag.detail)  # a replay
    order.refresh_from_db()
    assert again.pk == flag.pk and order.open_flags == 1
    order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="paid after expiry")
    order.refresh_from_db()
    assert order.open_flags == 2


def test_marking_reviewed_writes_who_when_why_and_an_audit_row(make_order: Any, boss: Any) -> None:
    order, flag = flagged_order(make_order)
    other = order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="late")

    marked = flags_mark_reviewed(flag_ids=[flag.pk], user=boss, comment="  refunded  ")

    assert marked == [flag.pk]
    flag.refresh_from_db()
    order.refresh_from_db()
    assert flag.reviewed_by == boss and flag.reviewed_at is not None
    assert flag.review_comment == "refunded"
    assert order.open_flags == 1  # the other flag is still open
    review = FlagReview.objects.get()
    assert (review.flag, review.order, review.reviewer, review.reviewer_name) == (
        flag,
        order,
        boss,
        "boss",
    )
    assert review.comment == "refunded"

    # A second review of the same flag changes nothing: the first one stands.
    assert flags_mark_reviewed(flag_ids=[flag.pk, other.pk], user=boss, comment="ok") == [other.pk]
    flag.refresh_from_db()
    order.refresh_from_db()
    assert flag.review_comment == "refunded" and order.open_flags == 0
    assert FlagReview.objects.count() == 2


def test_a_review_needs_a_comment_and_a_bounded_selection(make_order: Any, boss: Any) -> None:
    _, flag = flagged_order(make_order)
    with pytest.raises(CommentRequired):
        flags_mark_reviewed(flag_ids=[flag.pk], user=boss, comment="   ")
    with pytest.raises(TooManySelected):
        flags_mark_reviewed(flag_ids=range(MAX_SELECTED + 1), user=boss, comment="x")
    flag.refresh_from_db()
    assert flag.reviewed_at is None


def test_reconcile_applies_pending_notifications_and_expires_due_orders(make_order: Any) -> None:
    unpaid = make_order(deadline=timezone.now() - timedelta(minutes=5))
    paid_later = make_order()
    pending = stored_pending(paid_later)
    bystander = make_order(deadline=timezone.now() - timedelta(minutes=5))

    counts = orders_reconcile(order_ids=[unpaid.pk, paid_later.pk])

    assert counts["orders"] == 2 and counts["expired"] == 1
    assert counts["notifications"] == 1 and counts["outcome:applied"] == 1
    pending.refresh_from_db()
    assert pending.outcome == "applied" and pending.order_id == paid_later.pk
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses[unpaid.pk] == "expired"
    assert statuses[paid_later.pk] == "paid"
    assert statuses[bystander.pk] == "awaiting_payment"  # not selected: left to the sweep


# --- actions through the admin ---------------------------------------------------------


def test_reconcile_action(boss_client: Client, make_order: Any) -> None:
    order = make_order(deadline=timezone.now() - timedelta(minutes=5))

    response = post_action(boss_client, ORDERS, "reconcile_selected", [order.pk], follow=True)

    order.refresh_from_db()
    assert order.status == "expired"
    assert any("1 expired" in m for m in messages_of(response))


def test_replay_action(boss_client: Client, make_order: Any) -> None:
    order = make_order()
    pending = stored_pending(order)

    response = post_action(boss_client, NOTIFICATIONS, "replay", [pending.pk], follow=True)

    pending.refresh_from_db()
    order.refresh_from_db()
    assert pending.outcome == "applied" and order.status == "paid"
    assert any("Replayed 1 notification" in m for m in messages_of(response))


def test_mark_reviewed_action_asks_for_a_comment_first(
    boss_client: Client, make_order: Any
) -> None:
    order, flag = flagged_order(make_order, reference="needs-a-look")
    fine = make_order()

    page = post_action(boss_client, ORDERS, "mark_flags_reviewed", [order.pk, fine.pk])

    assert page.status_code == 200  # the confirmation page
    html = page.content.decode()
    assert "needs-a-look" in html and "paid too much" in html
    flag.refresh_from_db()
    assert flag.reviewed_at is None

    confirm = {
        "action": "mark_flags_reviewed",
        "_selected_action": [str(order.pk), str(fine.pk)],
        "apply": "yes",
        "flag": [str(flag.pk)],
    }
    no_comment = boss_client.post(ORDERS, {**confirm, "comment": ""})
    assert no_comment.status_code == 200 and "This field is required" in no_comment.content.decode()
    flag.refresh_from_db()
    assert flag.reviewed_at is None

    done = boss_client.post(ORDERS, {**confirm, "comment": "refunded the difference"}, follow=True)

    assert any("1 flag(s) marked reviewed" in m for m in messages_of(done))
    flag.refresh_from_db()
    order.refresh_from_db()
    assert flag.review_comment == "refunded the difference" and order.open_flags == 0


def test_unticked_flags_stay_open(boss_client: Client, make_order: Any) -> None:
    order, first = flagged_order(make_order)
    second = order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="late")

    boss_client.post(
        f"{ORDERS}{order.pk}/review/",
        {"apply": "yes", "flag": [str(second.pk)], "comment": "late is fine"},
    )

    first.refresh_from_db()
    second.refresh_from_db()
    order.refresh_from_db()
    assert first.reviewed_at is None and second.reviewed_at is not None
    assert order.open_flags == 1


def test_flag_admin_action_marks_reviewed(boss_client: Client, make_order: Any) -> None:
    _, flag = flagged_order(make_order)

    page = post_action(boss_client, FLAGS, "mark_reviewed", [flag.pk])
    assert page.status_code == 200 and "Mark reviewed" in page.content.decode()
    boss_client.post(
        FLAGS,
        {
            "action": "mark_reviewed",
            "_selected_action": [str(flag.pk)],
            "apply": "yes",
            "flag": [str(flag.pk)],
            "comment": "checked",
        },
    )

    flag.refresh_from_db()
    assert flag.reviewed_at is not None
    audit = boss_client.get(f"{FLAGS}{flag.pk}/change/").content.decode()
    assert "checked" in audit  # the audit trail, inline on the flag


def test_the_audit_trail_cannot_be_changed_or_deleted(
    boss_client: Client, make_order: Any, boss: Any
) -> None:
    _, flag = flagged_order(make_order)
    flags_mark_reviewed(flag_ids=[flag.pk], user=boss, comment="original")
    review = FlagReview.objects.get()

    boss_client.post(f"/admin/payments/flagreview/{review.pk}/change/", {"comment": "edited"})
    deleted = boss_client.post(f"/admin/payments/flagreview/{review.pk}/delete/", {"post": "yes"})

    review.refresh_from_db()
    assert review.comment == "original"
    assert deleted.status_code == 403


def test_export_csv_streams_money_in_units_and_defuses_formulas(
    boss_client: Client, make_order: Any
) -> None:
    evil = make_order(reference='=HYPERLINK("http://x")', amount_int=1_250_000, currency="USD")
    plain = make_order(reference="plain-1")

    response = post_action(boss_client, ORDERS, "export_csv", [evil.pk, plain.pk])

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows[str(evil.pk)]["reference"] == '\'=HYPERLINK("http://x")'
    assert (rows[str(evil.pk)]["amount"], rows[str(evil.pk)]["currency"]) == ("12.50000", "USD")
    assert rows[str(plain.pk)]["amount"] == "0.12345678"


def test_export_of_payments_and_notifications(boss_client: Client, make_order: Any) -> None:
    order = make_order()
    post_ipn(Client(), ipn_body(transaction=order.transaction, status="paid", amount_int=500))
    payment = Payment.objects.get()
    notification = Notification.objects.get()

    payments = post_action(boss_client, PAYMENTS, "export_csv", [payment.pk])
    notes = post_action(boss_client, NOTIFICATIONS, "export_csv", [notification.pk])

    payment_rows = list(csv.DictReader(io.StringIO(b"".join(payments.streaming_content).decode())))
    assert payment_rows[0]["amount"] == "0.00000500" and payment_rows[0]["currency"] == "BTC"
    note_rows = list(csv.DictReader(io.StringIO(b"".join(notes.streaming_content).decode())))
    assert note_rows[0]["transaction"] == str(order.transaction)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=x", "'\t=x"),
        ("safe", "safe"),
        (None, ""),
        (True, "yes"),
    ],
)
def test_csv_cells(value: Any, cell: str) -> None:
    assert csv_cell(value) == cell


# --- changelists: filters, search, money shown --------------------------------------


def test_flagged_filter(boss_client: Client, make_order: Any) -> None:
    flagged_order(make_order, reference="flagged-one")
    make_order(reference="quiet-one")

    html = boss_client.get(ORDERS, {"flagged": "yes"}).content.decode()
    assert "flagged-one" in html and "quiet-one" not in html
    html = boss_client.get(ORDERS, {"flagged": "no"}).content.decode()
    assert "flagged-one" not in html and "quiet-one" in html


def test_status_currency_and_date_filters(boss_client: Client, make_order: Any) -> None:
    make_order(reference="usd-paid", currency="USD", status="paid")
    make_order(reference="btc-waiting")
    make_order(reference="old-one", created=timezone.now() - timedelta(days=40))

    paid = boss_client.get(ORDERS, {"status__exact": "paid"}).content.decode()
    assert "usd-paid" in paid and "btc-waiting" not in paid
    usd = boss_client.get(ORDERS, {"currency": "USD"}).content.decode()
    assert "usd-paid" in usd and "btc-waiting" not in usd
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week = boss_client.get(
        ORDERS,
        {
            "created__gte": str(today - timedelta(days=7)),
            "created__lt": str(today + timedelta(days=1)),
        },
    ).content.decode()
    assert "btc-waiting" in week and "old-one" not in week
    assert "Past 7 days" in week  # a fixed choice, not a drill-down


def test_search_by_reference_transaction_and_payment_id(
    boss_client: Client, make_order: Any
) -> None:
    order = make_order(reference="find-me")
    other = make_order(reference="not-me")
    post_ipn(Client(), ipn_body(transaction=order.transaction, status="paid", amount_int=500))
    payment_id = Payment.objects.get().payment_id

    for term in ("find-me", str(order.transaction), str(payment_id), str(order.pk)):
        html = boss_client.get(ORDERS, {"q": term}).content.decode()
        assert "find-me" in html and "not-me" not in html, term
    assert "find-me" not in boss_client.get(ORDERS, {"q": str(uuid.uuid4())}).content.decode()
    assert boss_client.get(ORDERS, {"q": "no such thing"}).status_code == 200

    def found(url: str, term: str) -> str:
        return str(boss_client.get(url, {"q": term}).content.decode())

    notes = found(NOTIFICATIONS, "find-me")
    assert str(order.transaction) in notes and str(other.transaction) not in notes
    assert str(payment_id) in found(NOTIFICATIONS, str(payment_id))
    assert str(payment_id) in found(PAYMENTS, "find-me")
    assert str(payment_id) in found(PAYMENTS, str(order.transaction))


def test_payment_admin_shows_money_in_units_read_only(boss_client: Client, make_order: Any) -> None:
    order = make_order(currency="USD", amount_int=1_250_000)
    post_ipn(
        Client(),
        ipn_body(
            transaction=order.transaction, status="paid", amount_int=1_250_000, currency="USD"
        ),
    )
    payment = Payment.objects.get()

    listing = boss_client.get(PAYMENTS, {"currency": "USD"}).content.decode()
    assert "12.50 USD" in listing
    page = boss_client.get(f"{PAYMENTS}{payment.pk}/change/").content.decode()
    assert "12.50 USD" in page
    assert 'name="amount_int"' not in page  # read-only: shown, not an input
    boss_client.post(f"{PAYMENTS}{payment.pk}/change/", {"amount_int": 1, "status": "cancelled"})
    payment.refresh_from_db()
    assert (payment.amount_int, payment.status) == (1_250_000, "paid")


def test_order_page_links_to_its_review_and_the_dashboard(
    boss_client: Client, make_order: Any
) -> None:
    order, _ = flagged_order(make_order)
    html = boss_client.get(f"{ORDERS}{order.pk}/change/").content.decode()
    assert f"{ORDERS}{order.pk}/review/" in html and "Review 1 open flag" in html
    assert DASHBOARD in html
    assert DASHBOARD in boss_client.get("/admin/").content.decode()


# --- counting without scanning --------------------------------------------------------


def count_queries(queries: list[dict[str, str]]) -> list[str]:
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]


def test_filtered_lists_count_at_most_the_cap(
    boss_client: Client, make_order: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "cap", 3)
    for i in range(5):
        make_order(reference=f"many-{i}", status="paid")

    with CaptureQueriesContext(connection) as ctx:
        html = boss_client.get(ORDERS, {"status__exact": "paid"}).content.decode()

    assert "more than 3 orders" in html and "(estimated)" in html
    counts = count_queries(ctx.captured_queries)
    assert counts and all("LIMIT" in sql.upper() for sql in counts)
    unfiltered = boss_client.get(ORDERS).content.decode()
    if not is_postgres():
        assert "5 orders" in unfiltered  # SQLite (development): a plain count


def test_deep_pages_of_an_estimated_list_are_not_served(
    boss_client: Client, make_order: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "cap", 3)
    monkeypatch.setattr(EstimatedCountPaginator, "max_pages", 2)
    for i in range(6):
        make_order(reference=f"deep-{i}", status="paid")
    url = f"{ORDERS}?status__exact=paid&p="
    boss_client.get(ORDERS)  # warm
    from payments.admin.orders import OrderAdmin

    monkeypatch.setattr(OrderAdmin, "list_per_page", 1)
    assert boss_client.get(url + "2").status_code == 200
    assert "e=1" in boss_client.get(url + "3")["Location"]  # past max_pages: refused


@pytest.mark.postgres
def test_unfiltered_lists_use_postgres_estimate(
    boss_client: Client, make_order: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not is_postgres():
        pytest.skip("needs PostgreSQL (pg_class.reltuples)")
    monkeypatch.setattr(EstimatedCountPaginator, "cap", 5)
    for i in range(12):
        make_order(reference=f"est-{i}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE payments_order")

    with CaptureQueriesContext(connection) as ctx:
        html = boss_client.get(ORDERS).content.decode()

    assert "about 12 orders" in html
    assert not [sql for sql in count_queries(ctx.captured_queries) if "payments_order" in sql]


# --- the dashboard ---------------------------------------------------------------------


def seed_dashboard(make_order: Any, n: int) -> None:
    now = timezone.now()
    for i in range(n):
        order = make_order(reference=f"dash-{i}", currency="USD", amount_int=1_000_000)
        if i % 2 == 0:
            post_ipn(
                Client(),
                ipn_body(
                    transaction=order.transaction,
                    status="paid",
                    amount_int=1_000_000,
                    currency="USD",
                    date=now - timedelta(days=i % 3),
                ),
            )
    order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="came late")
    RejectedNotification.objects.create(window_start=now, reason="bad_signature", count=3)
    ReconciliationRun.objects.create(
        sweep="expire", status="done", counts={"examined": 4, "expired": 2}, finished=now
    )


def test_dashboard_shows_what_came_in_what_is_stuck_what_needs_a_person(
    boss_client: Client, make_order: Any
) -> None:
    seed_dashboard(make_order, 6)

    response = boss_client.get(DASHBOARD)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Orders per status" in html and "awaiting payment" in html
    by_status = {row.status: row.count for row in response.context["by_status"]}
    assert by_status["paid"] == 3 and by_status["awaiting_payment"] == 3
    assert "came late" in html and "dash-5" in html  # the flagged queue
    assert "<svg" in html and "<rect" in html and "30.00 USD" in html  # revenue, in units
    assert response.context["health"].rejected_last_hour == 3
    assert response.context["health"].last_received is not None
    assert "expired=2" in html  # the last run of the expire sweep
    assert "never run" in html  # the ledger sweep never ran
    assert DashboardSummary.objects.filter(shop=None).count() == 1  # computed once


def test_dashboard_queries_do_not_grow_with_the_data(boss_client: Client, make_order: Any) -> None:
    seed_dashboard(make_order, 2)
    dashboard_summary_refresh()
    with CaptureQueriesContext(connection) as small:
        boss_client.get(DASHBOARD)
    seed_dashboard(make_order, 12)
    dashboard_summary_refresh()
    with CaptureQueriesContext(connection) as larger:
        boss_client.get(DASHBOARD)

    assert len(larger.captured_queries) == len(small.captured_queries)
    scans = [
        q["sql"]
        for q in larger.captured_queries
        if "GROUP BY" in q["sql"].upper() and "payments_order" in q["sql"]
    ]
    assert not scans  # orders per status come from the summary row


def test_a_stale_summary_is_refreshed_in_the_background(
    boss_client: Client, make_order: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payments import tasks

    queued: list[Any] = []
    monkeypatch.setattr(
        tasks.refresh_dashboard_summary, "apply_async", lambda **kw: queued.append(kw)
    )
    cache.delete("payments:dashboard-summary-refresh-queued")
    make_order()
    summary = dashboard_summary_refresh(now=timezone.now() - timedelta(minutes=5))

    first = boss_client.get(DASHBOARD)
    boss_client.get(DASHBOARD)

    assert len(queued) == 1  # one refresh queued, however many views
    assert first.context["refreshing"] is True
    assert first.context["summary"].computed_at == summary.computed_at  # shown meanwhile
    assert "refreshing in the background" in first.content.decode()
    cache.delete("payments:dashboard-summary-refresh-queued")


def test_the_summary_counts_late_notifications(make_order: Any) -> None:
    order = make_order()
    late = stored_pending(order)
    Notification.objects.filter(pk=late.pk).update(
        outcome="applied",
        received_at=timezone.now() - timedelta(minutes=10),
        applied_at=timezone.now(),
    )
    on_time = stored_pending(make_order())
    Notification.objects.filter(pk=on_time.pk).update(outcome="applied", applied_at=timezone.now())

    figures = dashboard_summary_refresh().figures

    assert figures["notifications_24h"] == 2 and figures["notifications_late_24h"] == 1
