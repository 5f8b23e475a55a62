"""Staff resolve exceptional orders through the admin: real forms, real POSTs, the audit trail.

Each decision goes through /admin/payments/order/<id>/resolve/ over the Django
test client as a reviewer ("Payments reviewers" of `create_review_roles`), and
is checked where it lands: the OrderResolution row, the order's status and
transition, the shop event, the order's page and the dashboard. Amounts are
compared with `money.display(...)`, never a hard-coded format.
"""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.utils.html import escape

from payments import money, tasks
from payments.models import Order, OrderFlag, OrderResolution, OrderTransition, ShopEvent
from payments.services import order_flag
from payments.services.dashboard_summary import dashboard_summary_refresh
from payments.services.resolutions import refundable
from payments.states import OrderStatus
from payments.testing import ipn_body, post_ipn
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

ORDERS = "/admin/payments/order/"
RESOLUTIONS = "/admin/payments/orderresolution/"
FLAGS = "/admin/payments/orderflag/"
DASHBOARD = "/admin/payments/order/dashboard/"
PASSWORD = "a-long-password-1"
Action = OrderResolution.Action


# --- the world: roles, users, a shop listening for events -----------------------------


@pytest.fixture(autouse=True)
def roles(db: None) -> None:
    call_command("create_review_roles", stdout=StringIO())


@pytest.fixture(autouse=True)
def shop_events(settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Events are recorded (a shop is configured); their deliveries are captured, not sent."""
    settings.SHOP_WEBHOOK_URL = "http://127.0.0.1:9/shop/events"
    settings.SHOP_WEBHOOK_SECRET = "whsec-resolutions-0123456789abcdef"
    published: list[str] = []
    monkeypatch.setattr(
        tasks.deliver_shop_event, "apply_async", lambda args, **kw: published.append(args[0])
    )
    return published


def login(name: str, *, group: str | None = None, superuser: bool = False) -> Client:
    users = get_user_model().objects
    # Staff work for the default shop, which owns every order here.
    user = users.create_superuser(name, password=PASSWORD) if superuser else staff_user(name)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def reviewer() -> Client:
    return login("rita", group="Payments reviewers")


@pytest.fixture
def viewer() -> Client:
    return login("victor", group="Payments viewers")


def resolve_url(order: Order) -> str:
    return f"{ORDERS}{order.pk}/resolve/"


def change_url(order: Order) -> str:
    return f"{ORDERS}{order.pk}/change/"


def resolve(client: Client, order: Order, action: str, reason: str = "", **fields: str) -> Any:
    return client.post(resolve_url(order), {"action": action, "reason": reason, **fields})


def paid_by_ipn(order: Order, amount_int: int) -> None:
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=amount_int)
    assert post_ipn(Client(), body).content == b"[OK]"
    order.refresh_from_db()


def events(order: Order) -> list[ShopEvent]:
    return list(ShopEvent.objects.filter(order=order).order_by("created"))


def event_of(order: Order, event_type: str) -> ShopEvent:
    return ShopEvent.objects.get(order=order, type=event_type)


def error_note(response: Any) -> str:
    match = re.search(r'<p class="errornote">(.*?)</p>', response.content.decode(), re.S)
    return match.group(1) if match else ""


def readonly_field(html: str, name: str) -> str:
    """The text of a read-only field on an admin change page."""
    match = re.search(rf'field-{name}\b.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert match, f"no read-only field {name!r}"
    return match.group(1).strip()


def messages_after(client: Client, response: Any) -> list[str]:
    """Follow a redirect and return the messages shown on the page it leads to."""
    page = client.get(response["Location"])
    return [str(m) for m in page.context["messages"]]


def assert_nothing_written(order: Order) -> None:
    before = Order.objects.get(pk=order.pk)
    assert before.status == order.status
    assert not OrderResolution.objects.filter(order=order).exists()
    assert not ShopEvent.objects.filter(
        order=order, type__in=("order.resolved", "order.refunded")
    ).exists()


# --- the decisions ------------------------------------------------------------------------


def test_a_reviewer_accepts_an_underpaid_order_as_paid(reviewer: Client, make_order: Any) -> None:
    order = make_order(reference="short-by-a-bit")
    paid_by_ipn(order, order.amount_int - 345_678)
    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert order.flags.get().kind == OrderFlag.Kind.UNDERPAID

    page = reviewer.get(change_url(order)).content.decode()
    assert resolve_url(order) in page and "Resolve…" in page
    form = reviewer.get(resolve_url(order))
    assert form.status_code == 200
    assert [value for value, _ in form.context["offered"]] == [
        Action.ACCEPT_PAID, Action.MARK_INVALID, Action.CANCEL, Action.REFUND,
    ]  # fmt: skip
    assert 'name="csrfmiddlewaretoken"' in form.content.decode()

    response = resolve(reviewer, order, Action.ACCEPT_PAID, "  the payer topped up by bank  ")

    assert response.status_code == 302 and response["Location"] == change_url(order)
    shown = messages_after(reviewer, response)
    assert any("short-by-a-bit" in m and "accept as paid" in m for m in shown)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    resolution = OrderResolution.objects.get(order=order)
    assert (resolution.action, resolution.reason, resolution.user_name) == (
        Action.ACCEPT_PAID,
        "the payer topped up by bank",
        "rita",
    )
    assert resolution.user is not None and resolution.user.username == "rita"
    assert resolution.amount_int is None
    transition = OrderTransition.objects.filter(order=order).latest("created")
    assert (transition.from_status, transition.to_status) == ("awaiting_payment", "paid")
    assert "rita" in transition.reason and "the payer topped up by bank" in transition.reason
    assert [e.type for e in events(order)][-2:] == ["order.paid", "order.resolved"]
    resolved = event_of(order, "order.resolved").payload
    assert resolved["data"]["order"]["status"] == "paid"
    assert resolved["data"]["resolution"] == {
        "action": "accept_paid",
        "reason": "the payer topped up by bank",
        "by": "rita",
        "created": resolution.created.isoformat(),
    }


def test_a_reviewer_marks_an_expired_order_invalid(reviewer: Client, make_order: Any) -> None:
    order = make_order(status=OrderStatus.EXPIRED)

    response = resolve(reviewer, order, Action.MARK_INVALID, "a test order of the shop")

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.INVALID
    assert OrderResolution.objects.get(order=order).action == Action.MARK_INVALID
    transition = OrderTransition.objects.get(order=order)
    assert (transition.from_status, transition.to_status) == ("expired", "invalid")
    assert [e.type for e in events(order)] == ["order.invalid", "order.resolved"]
    resolution = event_of(order, "order.resolved").payload["data"]["resolution"]
    assert resolution["action"] == "mark_invalid"


def test_a_reviewer_cancels_an_open_order(reviewer: Client, make_order: Any) -> None:
    order = make_order(status=OrderStatus.CONFIRMING)

    response = resolve(reviewer, order, Action.CANCEL, "the payer asked to cancel")

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    resolution = OrderResolution.objects.get(order=order)
    assert (resolution.action, resolution.reason) == (Action.CANCEL, "the payer asked to cancel")
    transition = OrderTransition.objects.get(order=order)
    assert (transition.from_status, transition.to_status) == ("confirming", "cancelled")
    assert [e.type for e in events(order)] == ["order.cancelled", "order.resolved"]
    payload = event_of(order, "order.resolved").payload
    assert payload["data"]["order"]["status"] == "cancelled"
    assert payload["data"]["resolution"]["by"] == "rita"


def test_a_partial_then_a_full_refund_in_the_orders_currency(
    reviewer: Client, make_order: Any
) -> None:
    order = make_order(amount_int=1_250_000, currency="USD", status=OrderStatus.PAID)
    partial = money.to_int("2.50", "USD")

    first = resolve(
        reviewer, order, Action.REFUND, "one mug broke", amount="2.50", currency="USD",
        reference="bank-transfer-77",
    )  # fmt: skip

    assert first.status_code == 302
    shown = messages_after(reviewer, first)
    assert any(money.display(partial, "USD") in m for m in shown)
    refund = OrderResolution.objects.get(order=order)
    assert (refund.action, refund.amount_int, refund.currency, refund.reference) == (
        Action.REFUND,
        partial,
        "USD",
        "bank-transfer-77",
    )
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID  # a refund moves no status
    assert not OrderTransition.objects.filter(order=order).exists()
    event = event_of(order, "order.refunded")
    assert event.payload["data"]["resolution"] == {
        "action": "refund",
        "reason": "one mug broke",
        "by": "rita",
        "created": refund.created.isoformat(),
        "amount": format(money.to_decimal(partial, "USD"), "f"),
        "amount_int": partial,
        "currency": "USD",
        "reference": "bank-transfer-77",
    }

    # Empty amount: the rest of what is refundable.
    rest = resolve(reviewer, order, Action.REFUND, "the other mug too", currency="USD")

    assert rest.status_code == 302
    last = OrderResolution.objects.filter(order=order).latest("created", "id")
    assert (last.amount_int, last.currency) == (1_250_000 - partial, "USD")
    assert refundable(order=order, currency="USD") == 0
    assert ShopEvent.objects.filter(order=order, type="order.refunded").count() == 2
    page = reviewer.get(resolve_url(order))
    assert Action.REFUND not in dict(page.context["offered"])  # nothing left to refund


def test_a_refund_in_btc_of_an_overpaid_order(reviewer: Client, make_order: Any) -> None:
    order = make_order()
    excess = 100_000
    paid_by_ipn(order, order.amount_int + excess)
    assert order.status == OrderStatus.PAID
    assert order.flags.get().kind == OrderFlag.Kind.OVERPAID

    response = resolve(
        reviewer, order, Action.REFUND, "sent back the excess",
        amount=str(money.to_decimal(excess, "BTC")), currency="BTC", reference="txid-abc",
    )  # fmt: skip

    assert response.status_code == 302
    refund = OrderResolution.objects.get(order=order)
    assert (refund.amount_int, refund.currency) == (excess, "BTC")
    assert event_of(order, "order.refunded").payload["data"]["resolution"]["amount_int"] == excess


def test_a_refund_over_what_is_refundable_is_refused(reviewer: Client, make_order: Any) -> None:
    order = make_order(amount_int=1_250_000, currency="USD", status=OrderStatus.PAID)

    response = resolve(
        reviewer, order, Action.REFUND, "too generous", amount="12.50001", currency="USD"
    )

    assert response.status_code == 400
    assert money.display(1_250_000, "USD") in error_note(response)  # says what the limit is
    assert_nothing_written(order)
    # Nothing was received in BTC (no payment): nothing to refund in it either.
    in_btc = resolve(reviewer, order, Action.REFUND, "in bitcoin", amount="0.001", currency="BTC")
    assert in_btc.status_code == 400 and "BTC" in error_note(in_btc)
    assert_nothing_written(order)


@pytest.mark.parametrize(
    "amount", ["1e2", "-1", "1.000001", "12,50", "NaN", "0", "1 000", "9" * 41]
)
def test_an_amount_that_is_not_a_plain_decimal_of_the_currency_is_refused(
    reviewer: Client, make_order: Any, amount: str
) -> None:
    order = make_order(amount_int=1_250_000, currency="USD", status=OrderStatus.PAID)

    response = resolve(reviewer, order, Action.REFUND, "refund", amount=amount, currency="USD")

    assert response.status_code == 400
    assert response.context["form"].errors["amount"]
    assert_nothing_written(order)


def test_a_currency_other_than_the_orders_or_btc_is_refused(
    reviewer: Client, make_order: Any
) -> None:
    order = make_order(amount_int=1_250_000, currency="USD", status=OrderStatus.PAID)

    response = resolve(reviewer, order, Action.REFUND, "refund", amount="1", currency="EUR")

    assert response.status_code == 400
    assert response.context["form"].errors["currency"]
    assert_nothing_written(order)


# --- what is refused ----------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   \n "])
def test_a_reason_is_required(reviewer: Client, make_order: Any, reason: str) -> None:
    order = make_order()

    response = resolve(reviewer, order, Action.CANCEL, reason)

    assert response.status_code == 400
    assert response.context["form"].errors["reason"]
    assert "This field is required" in response.content.decode()
    assert_nothing_written(order)


def test_an_action_that_does_not_apply_to_the_status_is_refused(
    reviewer: Client, make_order: Any
) -> None:
    order = make_order(status=OrderStatus.PAID)
    page = reviewer.get(resolve_url(order))
    assert Action.CANCEL not in dict(page.context["offered"])  # not offered
    assert 'value="cancel"' not in page.content.decode()

    response = resolve(reviewer, order, Action.CANCEL, "the payer asked")  # posted anyway

    assert response.status_code == 400
    assert "cannot cancel" in error_note(response) and "paid" in error_note(response)
    assert_nothing_written(order)
    assert not OrderTransition.objects.filter(order=order).exists()


def test_an_order_nothing_applies_to_offers_nothing(reviewer: Client, make_order: Any) -> None:
    order = make_order(status=OrderStatus.FAILED, transaction=None)

    page = reviewer.get(resolve_url(order))

    assert page.status_code == 200 and page.context["offered"] == []
    assert "No decision applies" in page.content.decode()
    refused = resolve(reviewer, order, Action.MARK_INVALID, "void it")
    assert refused.status_code == 400 and "cannot mark invalid" in error_note(refused)
    assert_nothing_written(order)


def test_an_unknown_action_or_a_refund_field_with_another_action_is_refused(
    reviewer: Client, make_order: Any
) -> None:
    order = make_order()

    unknown = resolve(reviewer, order, "delete", "why not")
    mixed = resolve(reviewer, order, Action.CANCEL, "cancel it", amount="0.1")

    assert unknown.status_code == 400 and unknown.context["form"].errors["action"]
    assert mixed.status_code == 400 and "for a refund only" in error_note(mixed)
    assert_nothing_written(order)


def test_a_post_without_the_csrf_token_is_refused(make_order: Any) -> None:
    order = make_order()
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.create_superuser("boss", password=PASSWORD))

    response = resolve(client, order, Action.CANCEL, "forged")

    assert response.status_code == 403
    assert_nothing_written(order)


# --- who may ------------------------------------------------------------------------------


def test_a_viewer_gets_403_and_changes_nothing(viewer: Client, make_order: Any) -> None:
    order = make_order()

    assert "Resolve…" not in viewer.get(change_url(order)).content.decode()
    assert viewer.get(resolve_url(order)).status_code == 403
    assert resolve(viewer, order, Action.CANCEL, "sneaky").status_code == 403

    assert_nothing_written(order)
    assert not OrderTransition.objects.filter(order=order).exists()


def test_an_anonymous_user_is_sent_to_the_login_page(client: Client, make_order: Any) -> None:
    order = make_order()

    for response in (client.get(resolve_url(order)), resolve(client, order, Action.CANCEL, "x")):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    assert_nothing_written(order)


def test_a_superuser_may_resolve(make_order: Any) -> None:
    boss = login("boss", superuser=True)
    order = make_order()

    assert resolve(boss, order, Action.CANCEL, "duplicate order").status_code == 302
    assert OrderResolution.objects.get(order=order).user_name == "boss"


def test_viewers_see_the_audit_trail_and_reviewers_may_not_edit_it() -> None:
    def codenames(group: str) -> set[str]:
        return set(Group.objects.get(name=group).permissions.values_list("codename", flat=True))

    assert "view_orderresolution" in codenames("Payments viewers")
    assert not {"add_orderresolution", "change_orderresolution", "delete_orderresolution"} & (
        codenames("Payments reviewers")
    )


# --- what the admin shows -----------------------------------------------------------------


def test_the_order_page_shows_its_resolutions_quote_and_refunded_total(
    reviewer: Client, make_order: Any
) -> None:
    order = make_order(amount_int=1_250_000, currency="USD", status=OrderStatus.PAID)
    resolve(
        reviewer, order, Action.REFUND, "a broken mug", amount="3", currency="USD",
        reference="bank-42",
    )  # fmt: skip
    refund = money.to_int("3", "USD")

    html = reviewer.get(change_url(order)).content.decode()

    assert "resolutions (staff decisions)" in html.lower()
    for shown in ("a broken mug", "bank-42", "rita", "record a refund"):
        assert shown in html
    assert money.display(refund, "USD") in html  # the inline's amount
    assert readonly_field(html, "refunded") == money.display(refund, "USD")
    assert order.quote_rate_int is not None and order.quote_btc_int is not None
    quote = readonly_field(html, "quote")
    assert money.display(order.quote_rate_int, "USD") in quote
    assert money.display(order.quote_btc_int, "BTC") in quote


def test_an_order_without_a_quote_says_so(reviewer: Client, make_order: Any) -> None:
    order = make_order(currency="USD", amount_int=1_250_000, quote_rate_int=None)

    html = reviewer.get(change_url(order)).content.decode()

    assert order.quote_missing
    assert readonly_field(html, "quote") == "no quote"
    assert readonly_field(html, "refunded") == "-"


def test_the_resolutions_list_filters_by_action_and_nobody_edits_it(
    reviewer: Client, viewer: Client, make_order: Any
) -> None:
    cancelled, refunded = make_order(reference="was-cancelled"), make_order()
    paid_by_ipn(refunded, refunded.amount_int)  # paid in BTC: BTC to refund
    resolve(reviewer, cancelled, Action.CANCEL, "cancel reason")
    resolve(reviewer, refunded, Action.REFUND, "refund reason", currency="BTC")
    assert OrderResolution.objects.count() == 2

    listed = viewer.get(RESOLUTIONS, {"action__exact": "refund"})
    assert listed.status_code == 200
    html = listed.content.decode()
    assert "refund reason" in html and "cancel reason" not in html

    boss = login("boss", superuser=True)
    resolution = OrderResolution.objects.get(order=cancelled)
    assert boss.get(f"{RESOLUTIONS}add/").status_code == 403
    boss.post(f"{RESOLUTIONS}{resolution.pk}/change/", {"reason": "rewritten"})
    assert boss.post(f"{RESOLUTIONS}{resolution.pk}/delete/", {"post": "yes"}).status_code == 403
    resolution.refresh_from_db()
    assert resolution.reason == "cancel reason"
    assert boss.get(f"{RESOLUTIONS}{resolution.pk}/change/").status_code == 200  # view only


def test_the_dashboard_shows_refunds_and_exceptional_orders(
    reviewer: Client, make_order: Any
) -> None:
    paid = make_order(amount_int=1_250_000, currency="USD", status=OrderStatus.PAID)
    resolve(reviewer, paid, Action.REFUND, "partial", amount="1.5", currency="USD")
    resolve(reviewer, paid, Action.REFUND, "more", amount="2", currency="USD")
    exceptional = {
        kind: make_order(reference=f"odd-{kind}")
        for kind in ("underpaid", "quote_missing", "quote_expired", "invalid_notification")
    }
    for kind, order in exceptional.items():
        order_flag(order_id=order.pk, kind=kind, detail=f"{kind} detail")
    order_flag(order_id=make_order(reference="just-late").pk, kind="late", detail="late")
    dashboard_summary_refresh()

    response = reviewer.get(DASHBOARD)

    html = response.content.decode()
    refunds = re.search(r'<table id="refunds".*?</table>', html, re.S)
    assert refunds and "USD" in refunds.group(0)
    assert money.display(money.to_int("3.5", "USD"), "USD") in refunds.group(0)
    assert [(r.currency, r.refunds) for r in response.context["refunds"]] == [("USD", 2)]
    queue = re.search(r'<div class="module" id="exceptional-queue">.*?</table>', html, re.S)
    assert queue
    for kind, order in exceptional.items():
        assert order.reference in queue.group(0)
        assert escape(OrderFlag.Kind(kind).label) in queue.group(0)
        assert resolve_url(order) in queue.group(0)
    assert "just-late" not in queue.group(0)
    assert response.context["exceptional_open"] == 4
    # The tile's link lists exactly the open flags of those kinds.
    link = re.search(r'href="([^"]*kind__in=[^"]*)"', html)
    assert link
    flags = reviewer.get(link.group(1).replace("&amp;", "&"))
    assert flags.status_code == 200
    assert {f.kind for f in flags.context["cl"].result_list} == set(exceptional)
