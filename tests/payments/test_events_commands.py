"""The shop event commands: shop_events, shop_event_show, shop_event_redeliver,
shop_events_replay.

Run with call_command as an operator would, on the world of
tests/payments/events_world.py (two shops, their HTTP servers, real events);
what they send again is delivered by the delivery service, as a worker would,
and arrives at the shop's server. Bad input is a CommandError that says what
is wrong, never a traceback, and changes nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from payments.models import ShopEvent, ShopEventDelivery
from payments.services.shop_events import shop_event_ping
from tests.payments.events_world import World, deliver_due

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


NOVEMBER_FIRST = ["--shop", "shop-a", "--since", "2026-11-01", "--until", "2026-11-02"]


def days_ago(days: float) -> str:
    return (timezone.now() - timedelta(days=days)).isoformat()


# --- shop_events -----------------------------------------------------------------------


def test_shop_events_lists_the_shops_events_newest_first(world: World) -> None:
    out, _ = run("shop_events", "--shop", "shop-a")

    listed = [line.split()[2] for line in out.splitlines()]
    assert listed == [str(event.pk) for event in reversed(world.events_a)]
    assert str(world.event_b.pk) not in out  # type: ignore[union-attr]
    assert all("delivered 1/2" in line for line in out.splitlines())


def test_shop_events_filters(world: World) -> None:
    _, cancelled, newest = world.events_a

    by_type, _ = run("shop_events", "--shop", "shop-a", "--type", "order.cancelled")
    by_order, _ = run("shop_events", "--shop", "shop-a", "--order", str(newest.order_id))
    by_time, _ = run(
        "shop_events", "--shop", "shop-a", "--since", days_ago(2.5), "--until", days_ago(1.5)
    )
    limited, _ = run("shop_events", "--shop", "shop-a", "--limit", "1")
    nothing, _ = run("shop_events", "--shop", "shop-a", "--type", "ping")

    assert [str(cancelled.pk)] == [line.split()[2] for line in by_type.splitlines()]
    assert [str(newest.pk)] == [line.split()[2] for line in by_order.splitlines()]
    assert [str(cancelled.pk)] == [line.split()[2] for line in by_time.splitlines()]
    assert [str(newest.pk)] == [line.split()[2] for line in limited.splitlines()]
    assert nothing.strip() == "shop 'shop-a': no event"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--shop", "nobody"], "no shop named 'nobody'"),
        (["--shop", "shop-a", "--since", "yesterday"], "not an ISO 8601 date or time"),
        (["--shop", "shop-a", "--order", "42"], "not an order id"),
        (["--shop", "shop-a", "--type", "order.bogus"], "invalid choice"),
        (["--shop", "shop-a", "--limit", "0"], "at least 1"),
        (
            ["--shop", "shop-a", "--since", "2026-11-02", "--until", "2026-11-01"],
            "--until must be later than --since",
        ),
    ],
)
def test_shop_events_refuses_bad_input(world: World, args: list[str], says: str) -> None:
    with pytest.raises(CommandError, match=says):
        run("shop_events", *args)


# --- shop_event_show -------------------------------------------------------------------


def test_shop_event_show_prints_the_body_and_each_delivery(world: World) -> None:
    event = world.events_a[-1]

    out, _ = run("shop_event_show", str(event.pk))

    assert "of shop 'shop-a'" in out and str(event.order_id) in out
    start, end = out.index("{"), out.rindex("}") + 1
    assert json.loads(out[start:end]) == json.loads(world.good_server.received[-1].body)
    lines = [line for line in out.splitlines() if line.startswith("endpoint")]
    assert len(lines) == 2
    assert "delivered" in lines[0] and world.good_server.url in lines[0]
    assert "failing" in lines[1] and "last error: HTTP 500" in lines[1]


def test_shop_event_show_prints_the_body_with_its_keys_as_stored(world: World) -> None:
    event = world.events_a[-1]
    # The jsonb column's order on PostgreSQL; the stored bytes keep the delivered one.
    reordered = dict(sorted(event.payload.items(), key=lambda item: (len(item[0]), item[0])))
    ShopEvent.objects.filter(pk=event.pk).update(payload=reordered)

    out, _ = run("shop_event_show", str(event.pk))

    start, end = out.index("{"), out.rindex("}") + 1
    printed = json.loads(out[start:end])
    delivered = json.loads(world.good_server.received[-1].body)
    assert list(printed) == list(delivered) == ["id", "type", "version", "timestamp", "data"]
    assert list(printed["data"]["order"]) == list(delivered["data"]["order"])
    assert list(printed) != sorted(printed)  # neither sorted nor the column's order
    assert list(printed) != list(reordered)


@pytest.mark.parametrize(
    ("given", "says"), [("nope", "not an event id"), (str(uuid.uuid4()), "no event")]
)
def test_shop_event_show_refuses_an_unknown_event(world: World, given: str, says: str) -> None:
    with pytest.raises(CommandError, match=says):
        run("shop_event_show", given)


# --- shop_event_redeliver --------------------------------------------------------------


def test_shop_event_redeliver_sends_it_again_to_the_failing_endpoint(
    world: World, enqueued: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    event = world.events_a[-1]
    world.bad_server.replies[:] = [(204, b"", 0.0)]

    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("shop_event_redeliver", str(event.pk))

    assert out.strip().endswith("1 enqueued")
    assert enqueued == [str(ShopEventDelivery.objects.get(event=event, endpoint=world.bad).pk)]
    assert deliver_due() == ["delivered"]
    assert world.bad_server.received[-1].body == event.body.encode()


def test_shop_event_redeliver_to_one_endpoint_sends_a_delivered_event_again(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    event = world.events_a[-1]
    before = len(world.good_server.received)

    with django_capture_on_commit_callbacks(execute=True):
        run("shop_event_redeliver", str(event.pk), "--endpoint", str(world.good.pk))

    assert deliver_due() == ["delivered"]
    assert [r.body for r in world.good_server.received[before:]] == [event.body.encode()]


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [("theirs", "not one of the event's shop"), ("999999", "no webhook endpoint")],
)
def test_shop_event_redeliver_refuses_an_endpoint_not_of_the_events_shop(
    world: World, enqueued: list[str], endpoint: str, says: str
) -> None:
    given = str(world.other.pk) if endpoint == "theirs" else endpoint

    with pytest.raises(CommandError, match=says):
        run("shop_event_redeliver", str(world.events_a[-1].pk), "--endpoint", given)
    assert enqueued == []


# --- shop_events_replay ----------------------------------------------------------------


def test_shop_events_replay_sends_the_failed_deliveries_with_a_progress_bar(
    world: World, enqueued: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    world.bad_server.replies[:] = [(204, b"", 0.0)]
    seen_before = len(world.bad_server.received)

    with django_capture_on_commit_callbacks(execute=True):
        out, err = run(
            "shop_events_replay", "--shop", "shop-a", "--since", days_ago(5), "--until",
            timezone.now().isoformat(),
        )  # fmt: skip

    assert "3 failed deliveries made due, 3 enqueued" in out
    assert "replay" in err and "3/3" in err  # the progress bar, on stderr
    assert len(enqueued) == 3
    assert deliver_due() == ["delivered"] * 3
    resent = {r.body for r in world.bad_server.received[seen_before:]}
    assert resent == {event.body.encode() for event in world.events_a}


def test_shop_events_replay_never_sends_a_failed_ping_again(
    world: World, enqueued: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    ping = shop_event_ping(endpoint=world.bad)  # answered 500: given up at once, never retried
    assert ping is not None and not ping.ok
    since, until = days_ago(5), (timezone.now() + timedelta(minutes=1)).isoformat()

    dry, _ = run("shop_events_replay", "--shop", "shop-a", "--since", since, "--until", until,
                 "--dry-run")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("shop_events_replay", "--shop", "shop-a", "--since", since, "--until", until)

    assert "3 failed deliveries; nothing sent" in dry
    assert "3 failed deliveries made due, 3 enqueued" in out
    assert str(ping.delivery_id) not in enqueued


def test_shop_events_replay_dry_run_sends_nothing(world: World, enqueued: list[str]) -> None:
    out, _ = run(
        "shop_events_replay", "--shop", "shop-a", "--since", days_ago(5), "--until",
        timezone.now().isoformat(), "--dry-run",
    )  # fmt: skip

    assert "3 failed deliveries; nothing sent" in out
    assert enqueued == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--shop", "nobody", "--since", "2026-11-01", "--until", "2026-11-02"], "no shop"),
        (["--shop", "shop-a", "--since", "2026-11-02", "--until", "2026-11-01"], "later than"),
        (["--shop", "shop-a", "--since", "2026-01-01", "--until", "2026-03-01"], "at most 31"),
        (["--shop", "shop-a", "--since", "2026-02-30", "--until", "2026-03-01"], "ISO 8601"),
        (["--shop", "shop-a", "--until", "2026-03-01"], "--since"),
        (
            [*NOVEMBER_FIRST, "--endpoint", "theirs"],
            "not one of this shop's",
        ),
    ],
)
def test_shop_events_replay_refuses_bad_input(
    world: World, enqueued: list[str], args: list[str], says: str
) -> None:
    args = [str(world.other.pk) if arg == "theirs" else arg for arg in args]

    with pytest.raises(CommandError, match=says):
        run("shop_events_replay", *args)
    assert enqueued == []
