"""Staff per shop in the admin and the dashboard: nothing crosses between shops.

Two shops, alpha and beta, each with orders (one flagged, one paid and
refunded, one past its deadline), payments, notifications, a reviewed flag
and an API token. Alice works for alpha and Bob for beta, each with every
review permission (viewers, reviewers, token managers, and reconciling);
Nadia is staff with the same roles and no shop. Every request goes through
the admin's URLs with the Django test client: each changelist, change page,
action (review and resolve included), CSV export, search, filter,
autocomplete and the dashboard, tried with the other shop's staff user.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments.admin.base import ShopScopedAdmin, SuperuserOnlyAdmin
from payments.models import (
    ApiToken,
    DashboardSummary,
    FlagReview,
    Notification,
    Order,
    OrderFlag,
    OrderResolution,
    Payment,
    Shop,
)
from payments.secret_box import unseal
from payments.services import order_flag
from payments.services.dashboard_summary import dashboard_summary_refresh
from payments.services.resolutions import order_resolve
from payments.services.review import flags_mark_reviewed
from payments.services.shops import api_token_create
from payments.shops import api_token_digest
from payments.states import OrderStatus
from payments.testing import ipn_body
from tests.factories import PASSWORD, accepted_order, shop_with_account, staff_user

pytestmark = pytest.mark.django_db

ADMIN = "/admin/payments/"
DASHBOARD = f"{ADMIN}order/dashboard/"
ROLES = ("Payments viewers", "Payments reviewers", "Shop token managers")
# model name -> the world's key of the object it lists, for the crossing tests
CHANGELISTS = {
    "order": "flagged",
    "payment": "payment",
    "notification": "notification",
    "orderflag": "flag",
    "flagreview": "review",
    "orderresolution": "resolution",
    "apitoken": "token",
    "shop": "shop",
}


# --- the world ---------------------------------------------------------------------


def shop_world(shop: Shop, boss: Any) -> dict[str, Any]:
    """One shop's rows, each named after the shop (`<name>-...`) so that a page shows whose."""
    name, now = shop.name, timezone.now()
    flagged = accepted_order(shop=shop, reference=f"{name}-flagged")
    flag = order_flag(order_id=flagged.pk, kind=OrderFlag.Kind.OVERPAID, detail=f"{name} overpaid")
    paid = accepted_order(shop=shop, reference=f"{name}-paid", status=OrderStatus.PAID)
    payment = Payment.objects.create(
        payment_id=uuid.uuid4(), order=paid, status=Payment.Status.PAID,
        amount_int=paid.amount_int, currency="BTC", paid_at=now,
    )  # fmt: skip
    late = order_flag(order_id=paid.pk, kind=OrderFlag.Kind.LATE, detail=f"{name} late")
    flags_mark_reviewed(flag_ids=[late.pk], user=boss, comment=f"{name} checked")
    resolution = order_resolve(
        order_id=paid.pk, action=OrderResolution.Action.REFUND, user=boss,
        reason=f"{name} refund", amount_int=1_000_000, currency="BTC", reference=f"{name}-rf",
    )  # fmt: skip
    due = accepted_order(shop=shop, reference=f"{name}-due", deadline=now - timedelta(minutes=5))
    notification = Notification.objects.create(
        shop=shop, order=paid, transaction=paid.transaction, payment_id=payment.payment_id,
        body=ipn_body(transaction=paid.transaction, status="paid", amount_int=paid.amount_int),
        body_sha256=uuid.uuid4().hex * 2, status="paid", outcome="pending", needs_review=True,
    )  # fmt: skip
    token, _ = api_token_create(shop=shop, name=f"{name} token")
    return {
        "shop": shop, "flagged": flagged, "flag": flag, "paid": paid, "payment": payment,
        "review": FlagReview.objects.get(flag=late), "resolution": resolution, "due": due,
        "notification": notification, "token": token,
    }  # fmt: skip


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def reviewer_of(name: str, shops: list[Shop]) -> Client:
    """Staff with every review permission (and reconciling), working for `shops`."""
    user = staff_user(name, groups=ROLES, shops=shops)
    user.user_permissions.add(Permission.objects.get(codename="change_order"))
    return login(user)


@pytest.fixture
def world() -> dict[str, Any]:
    call_command("create_review_roles", stdout=StringIO())
    boss = get_user_model().objects.create_superuser("boss", password=PASSWORD)
    alpha, beta = shop_with_account("alpha"), shop_with_account("beta")
    return {
        "alpha": shop_world(alpha, boss),
        "beta": shop_world(beta, boss),
        "alice": reviewer_of("alice", [alpha]),
        "bob": reviewer_of("bob", [beta]),
        "nadia": reviewer_of("nadia", []),
        "boss": login(boss),
    }


def listed(client: Client, model: str, **query: str) -> set[Any]:
    """The primary keys a changelist shows (the page must answer 200)."""
    response = client.get(f"{ADMIN}{model}/", query)
    assert response.status_code == 200, (model, response.status_code)
    return {row.pk for row in response.context["cl"].result_list}


def post_action(client: Client, model: str, action: str, ids: list[Any], **extra: Any) -> Any:
    data = {"action": action, "_selected_action": [str(pk) for pk in ids], "index": "0"}
    return client.post(f"{ADMIN}{model}/", {**data, **extra})


def csv_text(response: Any) -> str:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return b"".join(response.streaming_content).decode()


# --- lists, pages, search, filters ---------------------------------------------------


@pytest.mark.parametrize("model", CHANGELISTS)
def test_a_changelist_shows_the_users_shop_only(world: dict[str, Any], model: str) -> None:
    key = CHANGELISTS[model]
    for user, mine, theirs in (("alice", "alpha", "beta"), ("bob", "beta", "alpha")):
        shown = listed(world[user], model)
        assert world[mine][key].pk in shown, (user, model)
        assert world[theirs][key].pk not in shown, (user, model)
        html = world[user].get(f"{ADMIN}{model}/").content.decode()
        assert f"{theirs}-" not in html and f"{theirs} token" not in html, (user, model)


@pytest.mark.parametrize("model", CHANGELISTS)
def test_another_shops_object_is_a_404_and_ones_own_a_200(
    world: dict[str, Any], model: str
) -> None:
    key = CHANGELISTS[model]
    alice, mine, theirs = world["alice"], world["alpha"][key], world["beta"][key]
    assert alice.get(f"{ADMIN}{model}/{mine.pk}/change/").status_code == 200
    for page in ("change", "history", "delete"):
        assert alice.get(f"{ADMIN}{model}/{theirs.pk}/{page}/").status_code == 404, page
    assert alice.post(f"{ADMIN}{model}/{theirs.pk}/change/", {}).status_code == 404


def test_review_and_resolve_pages_of_another_shops_order_are_404s(world: dict[str, Any]) -> None:
    alice, order, flag = world["alice"], world["beta"]["flagged"], world["beta"]["flag"]
    review, resolve = f"{ADMIN}order/{order.pk}/review/", f"{ADMIN}order/{order.pk}/resolve/"
    assert alice.get(review).status_code == 404
    assert (
        alice.post(
            review, {"apply": "yes", "flag": [str(flag.pk)], "comment": "not mine"}
        ).status_code
        == 404
    )
    assert alice.get(resolve).status_code == 404
    assert alice.post(resolve, {"action": "cancel", "reason": "not mine"}).status_code == 404
    flag.refresh_from_db()
    order.refresh_from_db()
    assert flag.reviewed_at is None and order.status == OrderStatus.AWAITING_PAYMENT
    assert not OrderResolution.objects.filter(order=order).exists()
    own = world["alpha"]["flagged"]
    assert alice.get(f"{ADMIN}order/{own.pk}/review/").status_code == 200
    assert alice.get(f"{ADMIN}order/{own.pk}/resolve/").status_code == 200


def test_search_finds_the_users_shop_only(world: dict[str, Any]) -> None:
    alice, alpha, beta = world["alice"], world["alpha"], world["beta"]
    searches = {  # model -> (a term finding alpha's row, the same kind of term for beta's)
        "order": (alpha["paid"].reference, beta["paid"].reference),
        "payment": (str(alpha["payment"].payment_id), str(beta["payment"].payment_id)),
        "notification": (str(alpha["paid"].transaction), str(beta["paid"].transaction)),
        "orderflag": (alpha["flagged"].reference, beta["flagged"].reference),
        "flagreview": (alpha["paid"].reference, beta["paid"].reference),
        "orderresolution": ("alpha-rf", "beta-rf"),
    }
    for model, (mine, theirs) in searches.items():
        assert listed(alice, model, q=mine), model
        assert not listed(alice, model, q=theirs), model


def test_a_reference_both_shops_use_finds_the_users_own_order(world: dict[str, Any]) -> None:
    mine = accepted_order(shop=world["alpha"]["shop"], reference="shared-1")
    theirs = accepted_order(shop=world["beta"]["shop"], reference="shared-1")
    order_flag(order_id=mine.pk, kind=OrderFlag.Kind.LATE, detail="mine")
    order_flag(order_id=theirs.pk, kind=OrderFlag.Kind.LATE, detail="theirs")

    assert listed(world["alice"], "order", q="shared-1") == {mine.pk}
    flags = OrderFlag.objects.filter(order=mine).values_list("pk", flat=True)
    assert listed(world["alice"], "orderflag", q="shared-1") == set(flags)
    assert listed(world["boss"], "order", q="shared-1") == {mine.pk, theirs.pk}


def test_a_shop_filter_for_the_superuser_and_none_for_one_shops_staff(
    world: dict[str, Any],
) -> None:
    alpha, beta = world["alpha"], world["beta"]
    boss_page = world["boss"].get(f"{ADMIN}order/")
    choices = {title for spec in boss_page.context["cl"].filter_specs for title in [spec.title]}
    assert "shop" in choices
    for model, key in CHANGELISTS.items():
        if model == "shop":
            continue
        only_alpha = listed(world["boss"], model, shop=str(alpha["shop"].pk))
        assert alpha[key].pk in only_alpha and beta[key].pk not in only_alpha, model
        assert {alpha[key].pk, beta[key].pk} <= listed(world["boss"], model), model
    assert "shop" in boss_page.context["cl"].list_display  # whose each order is
    alice_page = world["alice"].get(f"{ADMIN}order/")
    assert "shop" not in {spec.title for spec in alice_page.context["cl"].filter_specs}
    assert "shop" not in alice_page.context["cl"].list_display
    assert not listed(world["alice"], "order", shop=str(beta["shop"].pk))  # nothing crosses
    assert "e=1" in world["alice"].get(f"{ADMIN}order/", {"shop": "x"})["Location"]


def test_lists_scoped_through_the_order_count_less(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shop's payments are counted through a join: up to JOINED_SCOPE_COUNT_CAP rows."""
    monkeypatch.setattr("payments.admin.base.JOINED_SCOPE_COUNT_CAP", 1)
    shop = world["alpha"]["shop"]
    for _ in range(2):
        order = accepted_order(shop=shop)
        Payment.objects.create(
            payment_id=uuid.uuid4(), order=order, status=Payment.Status.PAID, currency="BTC"
        )
    staff = world["alice"].get(f"{ADMIN}payment/").content.decode()
    assert "more than 1 payment" in staff
    boss = world["boss"].get(f"{ADMIN}payment/").content.decode()
    assert "more than 1 " not in boss  # every shop: the usual count


def test_filters_keep_to_the_users_shop(world: dict[str, Any]) -> None:
    alice, alpha, beta = world["alice"], world["alpha"], world["beta"]
    assert listed(alice, "order", flagged="yes") == {alpha["flagged"].pk}
    assert listed(alice, "order", status__exact="paid") == {alpha["paid"].pk}
    assert listed(alice, "notification", needs_review__exact="1") == {alpha["notification"].pk}
    assert beta["flag"].pk not in listed(alice, "orderflag", open="yes")


def test_autocomplete_offers_the_users_shops_only(world: dict[str, Any]) -> None:
    query = {"app_label": "payments", "model_name": "apitoken", "field_name": "shop"}

    def offered(client: Client, term: str = "") -> set[str]:
        response = client.get("/admin/autocomplete/", {**query, "term": term})
        assert response.status_code == 200
        return {row["text"] for row in response.json()["results"]}

    assert offered(world["alice"]) == {"alpha"}
    assert offered(world["alice"], "beta") == set()
    assert offered(world["nadia"]) == set()
    assert {"alpha", "beta"} <= offered(world["boss"])


# --- actions and exports -------------------------------------------------------------


def test_csv_exports_hold_the_users_shop_only(world: dict[str, Any]) -> None:
    alice, alpha, beta = world["alice"], world["alpha"], world["beta"]
    exports = {"order": "paid", "payment": "payment", "notification": "notification"}
    for model, key in exports.items():
        both = [alpha[key].pk, beta[key].pk]
        mine, theirs = str(alpha["paid"].transaction), str(beta["paid"].transaction)
        if model == "payment":
            mine, theirs = str(alpha[key].payment_id), str(beta[key].payment_id)
        text = csv_text(post_action(alice, model, "export_csv", both))
        assert mine in text and theirs not in text, model
        across = csv_text(post_action(alice, model, "export_csv", both, select_across="1"))
        assert mine in across and theirs not in across and "beta-" not in across, model
    only_theirs = post_action(alice, "order", "export_csv", [beta["paid"].pk])
    assert list(csv.DictReader(io.StringIO(csv_text(only_theirs)))) == []


def test_actions_on_another_shops_rows_change_nothing(world: dict[str, Any]) -> None:
    alice, beta = world["alice"], world["beta"]
    post_action(alice, "order", "reconcile_selected", [beta["due"].pk])
    post_action(
        alice, "order", "mark_flags_reviewed", [beta["flagged"].pk],
        apply="yes", flag=[str(beta["flag"].pk)], comment="not mine",
    )  # fmt: skip
    post_action(
        alice, "orderflag", "mark_reviewed", [beta["flag"].pk],
        apply="yes", flag=[str(beta["flag"].pk)], comment="not mine",
    )  # fmt: skip
    post_action(alice, "apitoken", "revoke_selected", [beta["token"].pk])

    assert Order.objects.get(pk=beta["due"].pk).status == OrderStatus.AWAITING_PAYMENT
    assert OrderFlag.objects.get(pk=beta["flag"].pk).reviewed_at is None
    assert ApiToken.objects.get(pk=beta["token"].pk).revoked_at is None


def test_actions_on_ones_own_rows_work(world: dict[str, Any]) -> None:
    alice, alpha = world["alice"], world["alpha"]
    post_action(alice, "order", "reconcile_selected", [alpha["due"].pk])
    post_action(
        alice, "orderflag", "mark_reviewed", [alpha["flag"].pk],
        apply="yes", flag=[str(alpha["flag"].pk)], comment="checked the payment",
    )  # fmt: skip
    post_action(alice, "apitoken", "revoke_selected", [alpha["token"].pk])

    assert Order.objects.get(pk=alpha["due"].pk).status == OrderStatus.EXPIRED
    reviewed = OrderFlag.objects.select_related("reviewed_by").get(pk=alpha["flag"].pk)
    assert reviewed.reviewed_by is not None and reviewed.reviewed_by.username == "alice"
    assert ApiToken.objects.get(pk=alpha["token"].pk).revoked_at is not None


def test_a_review_form_cannot_smuggle_another_shops_flag(world: dict[str, Any]) -> None:
    alice, alpha, beta = world["alice"], world["alpha"], world["beta"]
    response = alice.post(
        f"{ADMIN}order/{alpha['flagged'].pk}/review/",
        {"apply": "yes", "flag": [str(alpha["flag"].pk), str(beta["flag"].pk)], "comment": "x"},
    )
    assert response.status_code == 302
    assert OrderFlag.objects.get(pk=alpha["flag"].pk).reviewed_at is not None
    assert OrderFlag.objects.get(pk=beta["flag"].pk).reviewed_at is None


# --- the dashboard --------------------------------------------------------------------


def dashboard(client: Client, **query: str) -> Any:
    response = client.get(DASHBOARD, query)
    assert response.status_code == 200
    return response


def status_counts(response: Any) -> dict[str, int]:
    return {row.status: row.count for row in response.context["by_status"] if row.count}


def test_the_dashboard_shows_the_users_shop_only(world: dict[str, Any]) -> None:
    dashboard_summary_refresh()
    page = dashboard(world["alice"])
    html = page.content.decode()

    assert status_counts(page) == {"awaiting_payment": 2, "paid": 1}
    assert page.context["flagged_orders"] == 1 and page.context["open_flags"] == 1
    assert [f.order.reference for f in page.context["flag_queue"]] == ["alpha-flagged"]
    assert [f.order.reference for f in page.context["exceptional_queue"]] == ["alpha-flagged"]
    assert [(r.currency, r.refunds) for r in page.context["refunds"]] == [("BTC", 1)]
    assert [(c.currency, c.payments) for c in page.context["charts"]] == [("BTC", 1)]
    health = page.context["health"]
    assert (health.needs_review.value, health.waiting.value) == (1, 1)
    assert health.rejected_last_hour is None and page.context["runs"] == []
    assert "Showing the shop alpha." in html
    assert "beta-" not in html and 'id="reconciliation"' not in html
    assert "rejected in the last hour" not in html and 'id="shop-choice"' not in html


def test_the_superuser_sees_every_shop_and_may_choose_one(world: dict[str, Any]) -> None:
    dashboard_summary_refresh()
    every = dashboard(world["boss"])
    assert status_counts(every) == {"awaiting_payment": 4, "paid": 2}
    assert every.context["flagged_orders"] == 2 and every.context["runs"]
    assert 'id="shop-choice"' in every.content.decode()
    assert {name for _, name in every.context["shop_choices"]} >= {"alpha", "beta"}

    beta = dashboard(world["boss"], shop=str(world["beta"]["shop"].pk))
    assert status_counts(beta) == {"awaiting_payment": 2, "paid": 1}
    assert [f.order.reference for f in beta.context["flag_queue"]] == ["beta-flagged"]
    html = beta.content.decode()
    assert f"?flagged=yes&amp;shop={world['beta']['shop'].pk}" in html  # links keep the shop
    assert "alpha-" not in html and beta.context["health"].rejected_last_hour is None


def test_another_shop_on_the_dashboard_is_a_404_and_junk_a_400(world: dict[str, Any]) -> None:
    alice = world["alice"]
    assert alice.get(DASHBOARD, {"shop": str(world["beta"]["shop"].pk)}).status_code == 404
    assert alice.get(DASHBOARD, {"shop": "999999"}).status_code == 404
    assert alice.get(DASHBOARD, {"shop": "beta"}).status_code == 400
    assert alice.get(DASHBOARD, {"shop": str(world["alpha"]["shop"].pk)}).status_code == 200


def test_staff_of_two_shops_see_both_together_or_one(world: dict[str, Any]) -> None:
    dashboard_summary_refresh()
    both = reviewer_of("carol", [world["alpha"]["shop"], world["beta"]["shop"]])
    together = dashboard(both)
    assert status_counts(together) == {"awaiting_payment": 4, "paid": 2}
    assert together.context["runs"] == []  # the sweeps are the service's, not theirs
    one = dashboard(both, shop=str(world["alpha"]["shop"].pk))
    assert status_counts(one) == {"awaiting_payment": 2, "paid": 1}


def test_a_shops_dashboard_reads_its_summary_without_scanning(world: dict[str, Any]) -> None:
    dashboard_summary_refresh()
    with CaptureQueriesContext(connection) as small:
        dashboard(world["alice"])
    for i in range(10):  # more of everything, in both shops
        for name in ("alpha", "beta"):
            order = accepted_order(shop=world[name]["shop"], reference=f"{name}-more-{i}")
            order_flag(order_id=order.pk, kind=OrderFlag.Kind.LATE, detail="late")
    dashboard_summary_refresh()
    with CaptureQueriesContext(connection) as larger:
        page = dashboard(world["alice"])

    assert len(larger.captured_queries) == len(small.captured_queries)
    grouped = [q["sql"] for q in larger.captured_queries if "GROUP BY" in q["sql"].upper()]
    assert not grouped  # per-shop counts come from the summary rows
    assert status_counts(page)["awaiting_payment"] == 12


def test_the_summary_has_a_row_per_shop_that_adds_up(world: dict[str, Any]) -> None:
    whole = dashboard_summary_refresh()
    rows = {row.shop_id: row for row in DashboardSummary.objects.filter(shop__isnull=False)}
    alpha, beta = world["alpha"]["shop"].pk, world["beta"]["shop"].pk
    assert set(rows) == {alpha, beta}
    for status in ("paid", "awaiting_payment"):
        assert whole.orders_by_status[status] == sum(
            rows[pk].orders_by_status.get(status, 0) for pk in (alpha, beta)
        )
    assert rows[alpha].figures["refunds"] == [
        {"currency": "BTC", "amount_int": 1_000_000, "refunds": 1}
    ]
    assert whole.figures["notifications_24h"] == 2 and rows[beta].figures["notifications_24h"] == 1


# --- staff of no shop, the superuser --------------------------------------------------


def test_staff_without_a_shop_see_no_order(world: dict[str, Any]) -> None:
    nadia = world["nadia"]
    for model, key in CHANGELISTS.items():
        assert listed(nadia, model) == set(), model
        obj = world["alpha"][key]
        assert nadia.get(f"{ADMIN}{model}/{obj.pk}/change/").status_code == 404, model
    dashboard_summary_refresh()
    page = dashboard(nadia)
    assert "you work for none yet" in page.content.decode()
    assert status_counts(page) == {} and page.context["flag_queue"] == []
    assert page.context["health"].needs_review.value == 0
    assert page.context["health"].last_received is None


def test_the_superuser_sees_both_shops(world: dict[str, Any]) -> None:
    for model, key in CHANGELISTS.items():
        assert {world["alpha"][key].pk, world["beta"][key].pk} <= listed(world["boss"], model)
        page = world["boss"].get(f"{ADMIN}{model}/{world['beta'][key].pk}/change/")
        assert page.status_code == 200, model


SERVICE_WIDE = (
    "rejectednotification", "reconciliationrun", "ledgercheckpoint", "shopmembership",
)  # fmt: skip


def test_service_wide_records_are_the_superusers_only(world: dict[str, Any]) -> None:
    alice = world["alice"]
    user = get_user_model().objects.get(username="alice")
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    for model in SERVICE_WIDE:
        assert alice.get(f"{ADMIN}{model}/").status_code == 403, model
        assert world["boss"].get(f"{ADMIN}{model}/").status_code == 200, model
    for model in ("sandboxaccount", "sandboxorder", "ipndelivery"):
        assert alice.get(f"/admin/sandbox/{model}/").status_code == 403, model
    index = alice.get("/admin/").content.decode()
    assert "Reconciliation runs" not in index and "Shop memberships" not in index


# Every model admin of the payments app keeps to the user's shops or is the superusers'.
REGISTERED = [model for model in admin.site._registry if model._meta.app_label == "payments"]


@pytest.mark.parametrize(
    "model",
    [pytest.param(model, id=model._meta.model_name) for model in REGISTERED],
)
def test_every_payments_admin_is_scoped_to_shops_or_the_superusers(model: Any) -> None:
    model_admin = admin.site._registry[model]
    assert isinstance(model_admin, ShopScopedAdmin | SuperuserOnlyAdmin)


# --- the shops themselves and their tokens --------------------------------------------


def test_a_token_made_by_a_shops_staff_shows_its_key_once(world: dict[str, Any]) -> None:
    alice, alpha = world["alice"], world["alpha"]["shop"]
    form = alice.get(f"{ADMIN}apitoken/add/")
    assert form.status_code == 200
    assert {shop.name for shop in form.context["adminform"].form.fields["shop"].queryset} == {
        "alpha"
    }

    made = alice.post(f"{ADMIN}apitoken/add/", {"shop": alpha.pk, "name": "till 2"})

    assert made.status_code == 200 and "no-store" in made["Cache-Control"]
    key = made.context["key"]
    token = ApiToken.objects.get(name="till 2")
    assert token.shop == alpha and token.key_sha256 == api_token_digest(key)
    assert key not in alice.get(f"{ADMIN}apitoken/{token.pk}/change/").content.decode()
    assert key not in alice.get(f"{ADMIN}apitoken/").content.decode()


def test_a_shops_staff_cannot_make_a_token_for_another_shop(world: dict[str, Any]) -> None:
    response = world["alice"].post(
        f"{ADMIN}apitoken/add/", {"shop": world["beta"]["shop"].pk, "name": "sneaky"}
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors["shop"]
    assert not ApiToken.objects.filter(name="sneaky").exists()


def test_only_superusers_add_or_change_a_shop(world: dict[str, Any]) -> None:
    alice, alpha = world["alice"], world["alpha"]["shop"]
    page = alice.get(f"{ADMIN}shop/{alpha.pk}/change/").content.decode()
    assert "set (sealed)" in page and 'name="gateway_secret"' not in page
    assert alice.get(f"{ADMIN}shop/add/").status_code == 403
    alice.post(f"{ADMIN}shop/{alpha.pk}/change/", {"name": "renamed", "active": ""})
    alpha.refresh_from_db()
    assert alpha.name == "alpha" and alpha.active


SECRET = "c2VjcmV0LWZvci10aGUtYWRtaW4tdGVzdC0wMTIzNDU2Nzg5"  # base64; a test value


def shop_form(**fields: Any) -> dict[str, Any]:
    return {
        "name": "gamma", "active": "on", "gateway_key": str(uuid.uuid4()),
        "gateway_secret": SECRET, "gateway_secret_env": "", "return_hosts": "gamma.example",
        "order_ttl_seconds": "", "underpaid_tolerance": "", **fields,
    }  # fmt: skip


def test_the_superuser_adds_a_shop_whose_secret_is_sealed_and_never_shown(
    world: dict[str, Any],
) -> None:
    boss = world["boss"]
    assert boss.post(f"{ADMIN}shop/add/", shop_form()).status_code == 302
    shop = Shop.objects.get(name="gamma")
    assert unseal(shop.gateway_secret_sealed) == SECRET and shop.return_hosts == ["gamma.example"]
    page = boss.get(f"{ADMIN}shop/{shop.pk}/change/").content.decode()
    assert SECRET not in page and shop.gateway_secret_sealed not in page and "set (sealed)" in page

    kept = shop_form(name="gamma", gateway_key=str(shop.gateway_key), gateway_secret="")
    assert boss.post(f"{ADMIN}shop/{shop.pk}/change/", kept).status_code == 302
    shop.refresh_from_db()
    assert unseal(shop.gateway_secret_sealed) == SECRET  # empty keeps the secret


def test_a_bad_secret_is_refused_and_not_shown_back(world: dict[str, Any]) -> None:
    response = world["boss"].post(f"{ADMIN}shop/add/", shop_form(gateway_secret="not base64!"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["gateway_secret"]
    assert "not base64!" not in response.content.decode()
    missing = world["boss"].post(f"{ADMIN}shop/add/", shop_form(gateway_secret=""))
    assert missing.status_code == 200 and not Shop.objects.filter(name="gamma").exists()


def test_the_shop_form_refuses_what_shop_create_refuses(
    world: dict[str, Any], settings: Any
) -> None:
    """The environment's key would route the shop's notifications to the default shop."""
    refused = {
        "gateway_key": shop_form(gateway_key=settings.GATEWAY_API_KEY),
        "gateway_secret_env": shop_form(gateway_secret="", gateway_secret_env="NOT A NAME"),
        "return_hosts": shop_form(return_hosts="https://gamma.example/path"),
        "underpaid_tolerance": shop_form(underpaid_tolerance="1.5"),
    }
    for field, form in refused.items():
        response = world["boss"].post(f"{ADMIN}shop/add/", form)
        assert response.status_code == 200, field
        assert response.context["adminform"].form.errors[field], field
    assert not Shop.objects.filter(name="gamma").exists()


def test_the_superuser_gives_a_staff_user_a_shop(world: dict[str, Any]) -> None:
    nadia = get_user_model().objects.get(username="nadia")
    beta = world["beta"]["shop"]
    form = {"user": nadia.pk, "shop": beta.pk}
    assert world["alice"].post(f"{ADMIN}shopmembership/add/", form).status_code == 403
    assert world["boss"].post(f"{ADMIN}shopmembership/add/", form).status_code == 302

    assert listed(world["nadia"], "order") == {
        world["beta"][key].pk for key in ("flagged", "paid", "due")
    }
