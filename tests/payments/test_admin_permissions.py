"""Who may do what in the review admin: one test class per role.

Roles come from `manage.py create_review_roles`: "Payments viewers" see
everything of their shops and change nothing; "Payments reviewers" also mark
flags reviewed; only superusers replay notifications and see the records of
the whole service. The staff users here work for the default shop, which owns
every order (what crosses between shops: test_admin_shops.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from payments.models import FlagReview, Notification, Order, OrderFlag
from payments.services import order_flag
from payments.testing import ipn_body
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

ORDERS = "/admin/payments/order/"
NOTIFICATIONS = "/admin/payments/notification/"
FLAGS = "/admin/payments/orderflag/"
DASHBOARD = "/admin/payments/order/dashboard/"
SHOP_LISTS = [
    ORDERS,
    NOTIFICATIONS,
    FLAGS,
    "/admin/payments/payment/",
    "/admin/payments/flagreview/",
    "/admin/payments/orderresolution/",
    "/admin/payments/shop/",
    "/admin/payments/apitoken/",
]
SERVICE_LISTS = [  # of the whole service: superusers only
    "/admin/payments/reconciliationrun/",
    "/admin/payments/rejectednotification/",
    "/admin/payments/ledgercheckpoint/",
    "/admin/payments/shopmembership/",
]
LISTS = SHOP_LISTS + SERVICE_LISTS


@pytest.fixture
def world(make_order: Any) -> dict[str, Any]:
    """A flagged order, an order past its deadline, a notification stored but never applied."""
    call_command("create_review_roles", stdout=StringIO())
    flagged = make_order(reference="flagged-order")
    flag = order_flag(order_id=flagged.pk, kind=OrderFlag.Kind.OVERPAID, detail="too much")
    due = make_order(reference="due-order", deadline=timezone.now() - timedelta(minutes=5))
    unpaid = make_order(reference="unpaid-order")
    pending = Notification.objects.create(
        body=ipn_body(transaction=unpaid.transaction, status="paid", amount_int=unpaid.amount_int),
        body_sha256=uuid.uuid4().hex * 2,
        outcome="pending",
    )
    return {"flagged": flagged, "flag": flag, "due": due, "unpaid": unpaid, "pending": pending}


def client_for(
    name: str, *, staff: bool = True, superuser: bool = False, group: str | None = None
) -> Client:
    users = get_user_model().objects
    if superuser:
        user = users.create_superuser(name, password="a-long-password-1")
    elif staff:
        user = staff_user(name, groups=[group] if group else [])  # of the default shop
    else:
        user = users.create_user(name, password="a-long-password-1", is_staff=False)
        if group:
            user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def action_choices(client: Client, url: str) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:  # no action at all: no form
        return set()
    return {value for value, _ in form.fields["action"].choices if value}


def post_action(client: Client, url: str, action: str, ids: list[Any], **extra: Any) -> Any:
    data = {"action": action, "_selected_action": [str(pk) for pk in ids], "index": "0"}
    return client.post(url, {**data, **extra})


def review_post(client: Client, world: dict[str, Any]) -> Any:
    return client.post(
        f"{ORDERS}{world['flagged'].pk}/review/",
        {"apply": "yes", "flag": [str(world["flag"].pk)], "comment": "looked at it"},
    )


def assert_nothing_changed(world: dict[str, Any]) -> None:
    world["flag"].refresh_from_db()
    world["pending"].refresh_from_db()
    assert world["flag"].reviewed_at is None
    assert not FlagReview.objects.exists()
    assert world["pending"].outcome == "pending"
    assert Order.objects.get(pk=world["due"].pk).status == "awaiting_payment"
    assert Order.objects.get(pk=world["unpaid"].pk).status == "awaiting_payment"


def test_the_command_makes_the_two_groups_and_is_idempotent(world: dict[str, Any]) -> None:
    call_command("create_review_roles", stdout=StringIO())

    def codenames(group: str) -> set[str]:
        permissions = Group.objects.get(name=group).permissions
        return set(permissions.values_list("codename", flat=True))

    viewers, reviewers = codenames("Payments viewers"), codenames("Payments reviewers")
    assert {"view_order", "view_payment", "view_notification", "view_orderflag"} <= viewers
    assert all(code.startswith("view_") for code in viewers)
    assert reviewers - viewers == {"change_orderflag"}


class TestAnonymous:
    def test_is_sent_to_the_login_page(self, client: Client, world: dict[str, Any]) -> None:
        for url in [DASHBOARD, *LISTS, f"{ORDERS}{world['flagged'].pk}/review/"]:
            response = client.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith("/admin/login/"), url

    def test_cannot_act(self, client: Client, world: dict[str, Any]) -> None:
        post_action(client, ORDERS, "reconcile_selected", [world["due"].pk])
        post_action(client, NOTIFICATIONS, "replay", [world["pending"].pk])
        review_post(client, world)
        assert_nothing_changed(world)


class TestNotStaff:
    def test_a_user_who_is_not_staff_is_denied_even_in_a_group(self, world: dict[str, Any]) -> None:
        client = client_for("shopper", staff=False, group="Payments reviewers")
        for url in [DASHBOARD, ORDERS, NOTIFICATIONS]:
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"], url
        review_post(client, world)
        assert_nothing_changed(world)

    def test_staff_without_a_role_sees_nothing(self, world: dict[str, Any]) -> None:
        client = client_for("newcomer")
        for url in [DASHBOARD, ORDERS, NOTIFICATIONS, f"{ORDERS}{world['flagged'].pk}/change/"]:
            assert client.get(url).status_code == 403, url
        assert review_post(client, world).status_code == 403
        assert_nothing_changed(world)


class TestViewer:
    @pytest.fixture
    def viewer(self, world: dict[str, Any]) -> Client:
        return client_for("viewer", group="Payments viewers")

    def test_sees_every_list_every_page_and_the_dashboard(
        self, viewer: Client, world: dict[str, Any]
    ) -> None:
        for url in SHOP_LISTS:
            assert viewer.get(url).status_code == 200, url
        for url in SERVICE_LISTS:
            assert viewer.get(url).status_code == 403, url
        dashboard = viewer.get(DASHBOARD)
        assert dashboard.status_code == 200 and "flagged-order" in dashboard.content.decode()
        page = viewer.get(f"{ORDERS}{world['flagged'].pk}/change/")
        assert page.status_code == 200
        assert "Review 1 open flag" not in page.content.decode()  # no way to act
        assert viewer.get(f"{NOTIFICATIONS}{world['pending'].pk}/change/").status_code == 200

    def test_may_only_export(self, viewer: Client, world: dict[str, Any]) -> None:
        assert action_choices(viewer, ORDERS) == {"export_csv"}
        assert action_choices(viewer, NOTIFICATIONS) == {"export_csv"}
        assert action_choices(viewer, "/admin/payments/payment/") == {"export_csv"}
        assert action_choices(viewer, FLAGS) == set()
        export = post_action(viewer, ORDERS, "export_csv", [world["flagged"].pk])
        assert export.status_code == 200 and b"flagged-order" in b"".join(export.streaming_content)

    def test_posting_an_action_changes_nothing(self, viewer: Client, world: dict[str, Any]) -> None:
        post_action(viewer, ORDERS, "reconcile_selected", [world["due"].pk, world["unpaid"].pk])
        post_action(viewer, NOTIFICATIONS, "replay", [world["pending"].pk])
        post_action(viewer, FLAGS, "mark_reviewed", [world["flag"].pk])
        viewer.post(
            FLAGS,
            {
                "action": "mark_reviewed",
                "_selected_action": [str(world["flag"].pk)],
                "apply": "yes",
                "flag": [str(world["flag"].pk)],
                "comment": "sneaky",
            },
        )
        assert viewer.get(f"{ORDERS}{world['flagged'].pk}/review/").status_code == 403
        assert review_post(viewer, world).status_code == 403
        viewer.post(f"{ORDERS}{world['flagged'].pk}/change/", {"status": "paid"})
        assert_nothing_changed(world)


class TestReviewer:
    @pytest.fixture
    def reviewer(self, world: dict[str, Any]) -> Client:
        return client_for("reviewer", group="Payments reviewers")

    def test_marks_flags_reviewed(self, reviewer: Client, world: dict[str, Any]) -> None:
        page = reviewer.get(f"{ORDERS}{world['flagged'].pk}/change/")
        assert "Review 1 open flag" in page.content.decode()
        assert reviewer.get(f"{ORDERS}{world['flagged'].pk}/review/").status_code == 200

        response = review_post(reviewer, world)

        assert response.status_code == 302
        world["flag"].refresh_from_db()
        assert world["flag"].reviewed_by.username == "reviewer"
        assert FlagReview.objects.get().comment == "looked at it"
        assert Order.objects.get(pk=world["flagged"].pk).open_flags == 0

    def test_has_the_review_actions_but_not_reconcile_or_replay(
        self, reviewer: Client, world: dict[str, Any]
    ) -> None:
        assert action_choices(reviewer, ORDERS) == {"mark_flags_reviewed", "export_csv"}
        assert action_choices(reviewer, FLAGS) == {"mark_reviewed"}
        assert action_choices(reviewer, NOTIFICATIONS) == {"export_csv"}

    def test_cannot_replay_or_reconcile(self, reviewer: Client, world: dict[str, Any]) -> None:
        post_action(reviewer, NOTIFICATIONS, "replay", [world["pending"].pk])
        post_action(reviewer, ORDERS, "reconcile_selected", [world["due"].pk])
        world["pending"].refresh_from_db()
        assert world["pending"].outcome == "pending"
        assert Order.objects.get(pk=world["due"].pk).status == "awaiting_payment"


class TestSuperuser:
    @pytest.fixture
    def boss(self, world: dict[str, Any]) -> Client:
        return client_for("boss", superuser=True)

    def test_has_every_action(self, boss: Client) -> None:
        assert action_choices(boss, ORDERS) == {
            "reconcile_selected",
            "mark_flags_reviewed",
            "export_csv",
        }
        assert action_choices(boss, NOTIFICATIONS) == {"replay", "export_csv"}

    def test_replays_a_notification(self, boss: Client, world: dict[str, Any]) -> None:
        post_action(boss, NOTIFICATIONS, "replay", [world["pending"].pk])
        world["pending"].refresh_from_db()
        assert world["pending"].outcome == "applied"
        assert Order.objects.get(pk=world["unpaid"].pk).status == "paid"

    def test_reconciles_orders(self, boss: Client, world: dict[str, Any]) -> None:
        post_action(boss, ORDERS, "reconcile_selected", [world["due"].pk, world["unpaid"].pk])
        assert Order.objects.get(pk=world["due"].pk).status == "expired"
        assert Order.objects.get(pk=world["unpaid"].pk).status == "paid"
