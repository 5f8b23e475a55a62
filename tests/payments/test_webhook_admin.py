"""Managing webhook endpoints: the admin (scoped to the user's shops) and the commands.

A secret is shown once, when it is made (adding, rotating), and never again.
A shop's staff see and act on their shop's endpoints, events and deliveries
only: another shop's is a 404, and an action given its ids changes nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client

from payments.models import (
    Order,
    Shop,
    ShopEvent,
    ShopEventDelivery,
    ShopMembership,
    WebhookEndpoint,
)
from payments.secret_box import unseal
from payments.services import order_transition
from payments.services import shop_events as service
from payments.services.shops import shop_create
from payments.services.webhook_endpoints import webhook_endpoint_create
from payments.shops import shop_default
from payments.states import OrderStatus
from tests.http_receiver import ScriptedReceiver, scripted
from tests.standard_webhooks import verifies

pytestmark = pytest.mark.django_db

ENDPOINTS = "/admin/payments/webhookendpoint/"
EVENTS = "/admin/payments/shopevent/"
DELIVERIES = "/admin/payments/shopeventdelivery/"
SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")  # the standard base64 of 32 bytes
GATEWAY_SECRET = "c2hvcC1iLWdhdGV3YXktc2VjcmV0LWZvci10aGUtdGVzdHMtb25seQ=="


@pytest.fixture
def receiver() -> Iterator[Callable[..., ScriptedReceiver]]:
    started: list[ScriptedReceiver] = []

    def start(*replies: tuple[int, bytes]) -> ScriptedReceiver:
        server = ScriptedReceiver(scripted(replies or ((204, b""),)), path="/hooks").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    from payments import tasks

    monkeypatch.setattr(tasks.deliver_shop_event, "apply_async", lambda *a, **kw: None)
    settings.SHOP_WEBHOOK_TIMEOUT = 1.0


@pytest.fixture
def boss() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("boss", password="x-long-pw-1"))
    return client


@pytest.fixture
def shop_b() -> Shop:
    return shop_create(name="shop-b", gateway_key=uuid.uuid4(), gateway_secret=GATEWAY_SECRET)


@pytest.fixture
def b_staff(shop_b: Shop) -> Client:
    """Staff of shop B with every permission on endpoints, events and deliveries."""
    user = get_user_model().objects.create_user("b-staff", password="x-long-pw-1", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="payments",
            content_type__model__in=["webhookendpoint", "shopevent", "shopeventdelivery"],
        )
    )
    ShopMembership.objects.create(shop=shop_b, user=user)
    client = Client()
    client.force_login(user)
    return client


def paid_event(make_order: Callable[..., Order], shop: Shop) -> ShopEvent:
    order = make_order(shop=shop)
    order_transition(order_id=order.pk, to=OrderStatus.PAID, reason="test")
    return ShopEvent.objects.get(order=order)


def act(client: Client, url: str, action: str, *ids: Any) -> Any:
    return client.post(
        url, {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True
    )


# --- The admin: secrets shown once -------------------------------------------------------


def test_adding_an_endpoint_shows_its_secret_once_and_never_again(boss: Client) -> None:
    answer = boss.post(
        f"{ENDPOINTS}add/",
        {
            "shop": shop_default().pk,
            "url": "https://shop.example/hooks",
            "description": "orders",
            "event_types": ["order.paid", "order.cancelled"],
            "enabled": "on",
        },
    )

    assert answer.status_code == 200, answer.content.decode()[-2000:]
    assert "no-store" in answer["Cache-Control"] or "no-cache" in answer["Cache-Control"]
    (secret,) = set(SECRET.findall(answer.content.decode()))
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["order.paid", "order.cancelled"] and endpoint.enabled
    assert unseal(endpoint.secret_sealed) == secret and secret not in endpoint.secret_sealed
    for page in (ENDPOINTS, f"{ENDPOINTS}{endpoint.pk}/change/"):
        html = boss.get(page).content.decode()
        assert secret not in html and "orders" in html


def test_rotating_shows_the_new_secret_once_and_the_former_one_keeps_signing(
    boss: Client, receiver: Callable[..., ScriptedReceiver]
) -> None:
    server = receiver()
    endpoint, old = webhook_endpoint_create(shop=shop_default(), url=server.url)

    answer = act(boss, ENDPOINTS, "rotate_secret", endpoint.pk)

    (new,) = set(SECRET.findall(answer.content.decode()))
    assert new != old and old not in answer.content.decode()
    endpoint.refresh_from_db()
    assert unseal(endpoint.secret_sealed) == new
    assert unseal(endpoint.previous_secret_sealed) == old
    assert "the former one signs too until" in boss.get(ENDPOINTS).content.decode()
    service.shop_event_ping(endpoint=endpoint)
    (received,) = server.received
    for secret in (old, new):
        assert verifies(received, secret)


def test_ping_enable_and_disable_from_the_list(
    boss: Client, receiver: Callable[..., ScriptedReceiver], settings: Any
) -> None:
    server = receiver((200, b"pong"))
    endpoint, _ = webhook_endpoint_create(shop=shop_default(), url=server.url)

    pinged = act(boss, ENDPOINTS, "ping", endpoint.pk).content.decode()
    assert "HTTP 200" in pinged and "pong" in pinged and len(server.received) == 1

    act(boss, ENDPOINTS, "disable", endpoint.pk)
    assert not WebhookEndpoint.objects.get(pk=endpoint.pk).enabled
    act(boss, ENDPOINTS, "enable", endpoint.pk)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).enabled

    # The settings' endpoint follows SHOP_WEBHOOK_URL / _SECRET: refused, with the reason.
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = server.url, "whsec_settings"
    from payments.services.webhook_endpoints import webhook_endpoint_sync_settings

    from_settings = webhook_endpoint_sync_settings()
    assert from_settings is not None
    refused = act(boss, ENDPOINTS, "disable", from_settings.pk).content.decode()
    assert "SHOP_WEBHOOK_URL" in refused
    refused = act(boss, ENDPOINTS, "rotate_secret", from_settings.pk).content.decode()
    assert "SHOP_WEBHOOK_SECRET" in refused
    assert WebhookEndpoint.objects.get(pk=from_settings.pk).enabled


def test_an_endpoints_page_lists_its_deliveries(
    boss: Client, make_order: Callable[..., Order], receiver: Callable[..., ScriptedReceiver]
) -> None:
    first, _ = webhook_endpoint_create(shop=shop_default(), url=receiver().url)
    second, _ = webhook_endpoint_create(shop=shop_default(), url=receiver().url)
    event = paid_event(make_order, shop_default())
    mine = event.deliveries.get(endpoint=first)

    page = boss.get(f"{ENDPOINTS}{first.pk}/change/").content.decode()
    listing = boss.get(f"{DELIVERIES}?endpoint={first.pk}").content.decode()

    assert f"{DELIVERIES}{mine.pk}/change/" in page and "order.paid" in page
    assert f"{DELIVERIES}?endpoint={first.pk}" in page
    assert f"{DELIVERIES}{mine.pk}/change/" in listing
    other = event.deliveries.get(endpoint=second)
    assert f"{DELIVERIES}{other.pk}/change/" not in listing


def test_a_bad_url_or_filter_in_the_form_is_a_form_error(boss: Client) -> None:
    answer = boss.post(
        f"{ENDPOINTS}add/",
        {"shop": shop_default().pk, "url": "ftp://shop.example/", "event_types": ["order.payed"]},
    )
    assert answer.status_code == 200 and not WebhookEndpoint.objects.exists()
    assert "errornote" in answer.content.decode()


# --- The admin: one shop's staff, another shop's rows ------------------------------------


@pytest.fixture
def two_shops(
    make_order: Callable[..., Order], receiver: Callable[..., ScriptedReceiver], shop_b: Shop
) -> dict[str, Any]:
    a_endpoint, _ = webhook_endpoint_create(shop=shop_default(), url="https://a.example/hooks")
    b_endpoint, _ = webhook_endpoint_create(shop=shop_b, url=receiver().url)
    a_event, b_event = paid_event(make_order, shop_default()), paid_event(make_order, shop_b)
    return {
        "a_endpoint": a_endpoint,
        "b_endpoint": b_endpoint,
        "a_event": a_event,
        "b_event": b_event,
        "a_delivery": a_event.deliveries.get(),
        "b_delivery": b_event.deliveries.get(),
    }


def test_a_shops_staff_see_only_their_shops_endpoints_events_and_deliveries(
    b_staff: Client, two_shops: dict[str, Any]
) -> None:
    w = two_shops
    endpoints = b_staff.get(ENDPOINTS).content.decode()
    events = b_staff.get(EVENTS).content.decode()
    deliveries = b_staff.get(DELIVERIES).content.decode()

    assert w["b_endpoint"].url in endpoints and "a.example" not in endpoints
    assert str(w["b_event"].pk) in events and str(w["a_event"].pk) not in events
    assert f"{DELIVERIES}{w['b_delivery'].pk}/" in deliveries
    assert f"{DELIVERIES}{w['a_delivery'].pk}/" not in deliveries
    assert "a.example" not in deliveries  # nor in the endpoint filter's choices
    for url in (
        f"{ENDPOINTS}{w['b_endpoint'].pk}/change/",
        f"{EVENTS}{w['b_event'].pk}/change/",
        f"{DELIVERIES}{w['b_delivery'].pk}/change/",
    ):
        assert b_staff.get(url).status_code == 200, url


def test_another_shops_endpoint_event_and_delivery_are_404(
    b_staff: Client, two_shops: dict[str, Any]
) -> None:
    w = two_shops
    for url in (
        f"{ENDPOINTS}{w['a_endpoint'].pk}/change/",
        f"{ENDPOINTS}{w['a_endpoint'].pk}/delete/",
        f"{ENDPOINTS}{w['a_endpoint'].pk}/history/",
        f"{EVENTS}{w['a_event'].pk}/change/",
        f"{DELIVERIES}{w['a_delivery'].pk}/change/",
        f"{ENDPOINTS}999999/change/",  # the same answer as for one that does not exist
    ):
        assert b_staff.get(url).status_code == 404, url
    answer = b_staff.post(
        f"{ENDPOINTS}{w['a_endpoint'].pk}/change/", {"url": "https://evil.example/"}
    )
    assert answer.status_code == 404
    assert WebhookEndpoint.objects.get(pk=w["a_endpoint"].pk).url == "https://a.example/hooks"


def test_actions_given_another_shops_ids_change_nothing(
    b_staff: Client, two_shops: dict[str, Any]
) -> None:
    w = two_shops
    a_endpoint = w["a_endpoint"]
    ShopEventDelivery.objects.filter(pk=w["a_delivery"].pk).update(given_up_at="2020-01-01T00:00Z")

    for action in ("rotate_secret", "ping", "disable"):
        answer = act(b_staff, ENDPOINTS, action, a_endpoint.pk)
        assert answer.status_code == 200 and "whsec_" not in answer.content.decode()
    act(b_staff, EVENTS, "deliver_again", w["a_event"].pk)
    act(b_staff, DELIVERIES, "deliver_again", w["a_delivery"].pk)

    after = WebhookEndpoint.objects.get(pk=a_endpoint.pk)
    assert after.enabled and after.secret_sealed == a_endpoint.secret_sealed
    assert (
        not after.previous_secret_sealed
        and not after.deliveries.filter(event__type="ping").exists()
    )
    assert ShopEventDelivery.objects.get(pk=w["a_delivery"].pk).given_up_at is not None


def test_staff_add_endpoints_to_their_shop_only(
    b_staff: Client, shop_b: Shop, two_shops: dict[str, Any]
) -> None:
    form = b_staff.get(f"{ENDPOINTS}add/").content.decode()
    assert "shop-b" in form and ">default<" not in form

    refused = b_staff.post(
        f"{ENDPOINTS}add/",
        {"shop": shop_default().pk, "url": "https://x.example/", "enabled": "on"},
    )
    made = b_staff.post(
        f"{ENDPOINTS}add/", {"shop": shop_b.pk, "url": "https://b2.example/", "enabled": "on"}
    )

    assert refused.status_code == 200 and "errornote" in refused.content.decode()
    assert not WebhookEndpoint.objects.filter(url="https://x.example/").exists()
    assert made.status_code == 200 and SECRET.search(made.content.decode())
    assert WebhookEndpoint.objects.get(url="https://b2.example/").shop == shop_b


# --- The commands --------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_shop_webhook_add_prints_the_secret_once_and_list_never_shows_it(
    shop_b: Shop, receiver: Callable[..., ScriptedReceiver]
) -> None:
    server = receiver((200, b"pong"))

    added = run(
        "shop_webhook_add", "shop-b", server.url, "--events", "order.paid,order.expired",
        "--description", "fulfilment",
    )  # fmt: skip
    listed = run("shop_webhook_list", "shop-b")

    (secret,) = SECRET.findall(added)
    endpoint = WebhookEndpoint.objects.get(shop=shop_b)
    assert f"endpoint {endpoint.pk}" in added
    assert endpoint.event_types == ["order.paid", "order.expired"]
    assert server.url in listed and "order.paid,order.expired" in listed and "fulfilment" in listed
    assert secret not in listed and "whsec_" not in listed
    pinged = run("shop_webhook_ping", str(endpoint.pk))
    assert "HTTP 200" in pinged and "pong" in pinged
    (received,) = server.received
    assert verifies(received, secret)


def test_shop_webhook_rotate_prints_the_new_secret_and_both_sign_meanwhile(
    shop_b: Shop, receiver: Callable[..., ScriptedReceiver]
) -> None:
    server = receiver()
    endpoint, old = webhook_endpoint_create(shop=shop_b, url=server.url)

    rotated = run("shop_webhook_rotate", str(endpoint.pk), "--hours", "2")
    run("shop_webhook_ping", str(endpoint.pk))

    (new,) = SECRET.findall(rotated)
    assert "former secret signs too until" in rotated
    (received,) = server.received
    for secret in (old, new):
        assert verifies(received, secret)
    assert "former secret signs until" in run("shop_webhook_list", "shop-b")


def test_a_failed_ping_is_a_command_error_with_the_answer(
    shop_b: Shop, receiver: Callable[..., ScriptedReceiver]
) -> None:
    endpoint, _ = webhook_endpoint_create(shop=shop_b, url=receiver((500, b"broken")).url)

    with pytest.raises(CommandError, match="HTTP 500"):
        run("shop_webhook_ping", str(endpoint.pk))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("shop_webhook_add", "no-such-shop", "https://x.example/"), "no shop named"),
        (("shop_webhook_add", "default", "ftp://x.example/"), "url"),
        (("shop_webhook_add", "default", "https://x.example/", "--events", "order.payed"),
         "unknown event type"),
        (("shop_webhook_list", "no-such-shop"), "no shop named"),
        (("shop_webhook_rotate", "999999"), "no webhook endpoint"),
        (("shop_webhook_rotate", "x; drop"), "no webhook endpoint"),
        (("shop_webhook_ping", "999999"), "no webhook endpoint"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_command_error(args: tuple[str, ...], says: str) -> None:
    shop_default()
    with pytest.raises(CommandError, match=says):
        run(*args)
    assert not WebhookEndpoint.objects.exists()


def test_the_settings_endpoint_is_rotated_by_its_setting_not_the_command(settings: Any) -> None:
    from payments.services.webhook_endpoints import webhook_endpoint_sync_settings

    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = "https://s.example/", "whsec_s"
    endpoint = webhook_endpoint_sync_settings()
    assert endpoint is not None

    with pytest.raises(CommandError, match="SHOP_WEBHOOK_SECRET"):
        run("shop_webhook_rotate", str(endpoint.pk))
    assert "from SHOP_WEBHOOK_URL" in run("shop_webhook_list", "default")


def test_the_delivery_state_filter_tells_failing_from_pending(
    boss: Client, receiver: Callable[..., ScriptedReceiver], make_order: Callable[..., Order]
) -> None:
    """A delivery whose last attempt failed is `failing`; one not tried yet is `pending`."""
    failing_server, waiting_server = receiver((500, b"no")), receiver()
    failing, _ = webhook_endpoint_create(shop=shop_default(), url=failing_server.url)
    event = paid_event(make_order, shop_default())
    webhook_endpoint_create(shop=shop_default(), url=waiting_server.url)
    waiting = paid_event(make_order, shop_default()).deliveries.get(
        endpoint__url=waiting_server.url
    )
    tried = event.deliveries.get(endpoint=failing)
    service.shop_event_deliver(delivery_id=tried.pk)

    failing_list = boss.get(f"{DELIVERIES}?state=failing").content.decode()
    pending_list = boss.get(f"{DELIVERIES}?state=pending").content.decode()

    assert f"{DELIVERIES}{tried.pk}/change/" in failing_list
    assert f"{DELIVERIES}{waiting.pk}/change/" not in failing_list
    assert f"{DELIVERIES}{waiting.pk}/change/" in pending_list
    assert f"{DELIVERIES}{tried.pk}/change/" not in pending_list
