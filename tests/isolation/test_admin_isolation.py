"""Shop isolation in the admin and the dashboard, over HTTP, with the other shop's staff."""

from __future__ import annotations

import re
import uuid
from typing import Any

import requests
from django.contrib import admin
from django.core import serializers
from django.db.models import Model, QuerySet

from payments.admin.base import ShopScopedAdmin, SuperuserOnlyAdmin
from tests.isolation.conftest import ShopSide, csrf_token


def _payments_admins() -> dict[str, Any]:
    return {
        str(model._meta.model_name): model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "payments"
    }


# Each payments admin either scopes its rows to the user's shops (its `shop_path`) or is
# for superusers only; both kinds are tried below, so every changelist is.
SHOP_PATH = {
    name: model_admin.shop_path
    for name, model_admin in _payments_admins().items()
    if isinstance(model_admin, ShopScopedAdmin)
}
SERVICE_WIDE = {
    name
    for name, model_admin in _payments_admins().items()
    if isinstance(model_admin, SuperuserOnlyAdmin)
}


def _rows(model_name: str, side: ShopSide) -> QuerySet[Model]:
    model = _payments_admins()[model_name].model
    return model._default_manager.filter(**{SHOP_PATH[model_name]: side.shop.pk})


def _snapshot(side: ShopSide) -> dict[str, str]:
    return {name: serializers.serialize("json", _rows(name, side)) for name in SHOP_PATH}


def _markers(side: ShopSide) -> set[str]:
    """Strings that appear on a page only if something of the shop's is on it."""
    found = set(side.references)
    for name in SHOP_PATH:
        for pk in _rows(name, side).values_list("pk", flat=True):
            found.add(f"/admin/payments/{name}/{pk}/change/")
    found |= {order["transaction"] for order in side.orders if order.get("transaction")}
    return found


def _leaks(page: str, side: ShopSide, *, asked: str = "") -> set[str]:
    """The shop's markers on the page, but for `asked` (a search box shows its term)."""
    return {marker for marker in _markers(side) - {asked} if marker in page}


def test_every_payments_admin_is_tried_by_this_suite() -> None:
    assert set(_payments_admins()) == set(SHOP_PATH) | SERVICE_WIDE
    assert {"order", "payment", "orderflag", "notification", "apitoken"} <= set(SHOP_PATH)


def test_changelists_show_only_the_staff_members_shop(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    for name in SHOP_PATH:
        page = beta.staff.get(f"{beta.base_url}/admin/payments/{name}/", timeout=30)
        assert page.status_code == 200, name
        assert _leaks(page.text, alpha) == set(), name
        for reference in alpha.references:
            searched = beta.staff.get(
                f"{beta.base_url}/admin/payments/{name}/", params={"q": reference}, timeout=30
            )
            assert _leaks(searched.text, alpha, asked=reference) == set(), name
    own = beta.staff.get(f"{beta.base_url}/admin/payments/order/", timeout=30).text
    assert _leaks(own, beta), "the staff member's own orders are listed"


def test_service_wide_pages_are_for_superusers(two_shops: tuple[ShopSide, ShopSide]) -> None:
    _, beta = two_shops
    for name in SERVICE_WIDE:
        page = beta.staff.get(f"{beta.base_url}/admin/payments/{name}/", timeout=30)
        assert page.status_code == 403, name


def _same_as_missing(session: requests.Session, url: str, missing_url: str) -> None:
    theirs = session.get(url, timeout=30, allow_redirects=False)
    missing = session.get(missing_url, timeout=30, allow_redirects=False)
    assert theirs.status_code == missing.status_code, url
    assert theirs.status_code in (302, 404), url
    assert theirs.headers.get("Location") == missing.headers.get("Location"), url


def test_change_and_order_pages_of_another_shop_look_missing(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    base = f"{beta.base_url}/admin/payments"
    tried: set[str] = set()
    for name in SHOP_PATH:
        pk_field = _payments_admins()[name].model._meta.pk
        missing_pk = str(uuid.uuid4()) if pk_field.get_internal_type() == "UUIDField" else "987654"
        for pk in _rows(name, alpha).values_list("pk", flat=True):
            _same_as_missing(
                beta.staff, f"{base}/{name}/{pk}/change/", f"{base}/{name}/{missing_pk}/change/"
            )
            tried.add(name)
    for order_id in alpha.order_ids:
        for page in ("review", "resolve", "history"):
            _same_as_missing(
                beta.staff,
                f"{base}/order/{order_id}/{page}/",
                f"{base}/order/{uuid.uuid4()}/{page}/",
            )
            tried.add(page)
    # The fixture's flows left rows of each kind a shop always has: none was skipped.
    kinds = {"order", "payment", "orderflag", "notification", "apitoken", "shop"}
    assert kinds | {"review", "resolve", "history"} <= tried


def _actions(session: requests.Session, url: str) -> list[str]:
    page = session.get(url, timeout=30).text
    select = re.search(r'<select name="action"[^>]*>(.*?)</select>', page, re.S)
    return re.findall(r'<option value="([^"]+)"', select.group(1)) if select else []


def test_actions_and_exports_never_touch_another_shops_rows(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    before = _snapshot(alpha)
    tried = 0
    for name in SHOP_PATH:
        url = f"{beta.base_url}/admin/payments/{name}/"
        selected = [str(pk) for pk in _rows(name, alpha).values_list("pk", flat=True)]
        for action in _actions(beta.staff, url):
            if not action or not selected:
                continue
            data = {
                "action": action,
                "_selected_action": selected,
                "index": "0",
                "csrfmiddlewaretoken": csrf_token(beta.staff, url),
                "comment": "tried by another shop's staff",
                "post": "yes",
            }
            answer = beta.staff.post(url, data=data, timeout=30)
            assert answer.status_code in (200, 302), (name, action)
            assert _leaks(answer.text, alpha) == set(), (name, action)
            tried += 1
    assert tried >= 5
    assert _snapshot(alpha) == before


def test_the_dashboard_shows_the_staff_members_shop_only(
    two_shops: tuple[ShopSide, ShopSide],
) -> None:
    alpha, beta = two_shops
    page = beta.staff.get(f"{beta.base_url}/admin/payments/order/dashboard/", timeout=30)
    assert page.status_code == 200
    assert _leaks(page.text, alpha) == set()


def test_a_superuser_sees_both_shops_and_can_filter_by_shop(
    two_shops: tuple[ShopSide, ShopSide], superuser_session: requests.Session
) -> None:
    alpha, beta = two_shops
    url = f"{alpha.base_url}/admin/payments/order/"
    everything = superuser_session.get(url, timeout=30).text
    assert _leaks(everything, alpha) and _leaks(everything, beta)
    only_beta = superuser_session.get(url, params={"shop": beta.shop.pk}, timeout=30)
    assert _leaks(only_beta.text, beta) and not _leaks(only_beta.text, alpha)
