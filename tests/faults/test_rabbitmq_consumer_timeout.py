"""RabbitMQ's consumer timeout: a long shop-event retry is never held by the broker.

RabbitMQ closes the channel of a consumer that keeps a message unacknowledged
past `consumer_timeout` (default 30 minutes) with PRECONDITION_FAILED; a Celery
countdown is exactly such a message (prefetched, acknowledged after the task
ran: acks_late). The service keeps a retry later than CELERY_MAX_COUNTDOWN_SECONDS
in the database and lets the sweep enqueue it when due.

The timeout is set short (2 s, checked every second) on a private RabbitMQ node
this module starts on a free port: RabbitMQ before 3.12 has no per-vhost or
per-queue consumer timeout, and changing it on the shared broker would change it
for everyone. Skipped, and reported, where rabbitmq-server is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from payments import tasks
from payments.models import Order, ShopEventDelivery
from payments.services import shop_events
from tests.conftest import celery_app_on
from tests.faults.conftest import free_port, wait_until
from tests.http_receiver import ScriptedReceiver, scripted

pytestmark = [pytest.mark.worker, pytest.mark.rabbitmq]

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CONSUMER_TIMEOUT_MS = 2000
SECRET = "whsec-rabbitmq-test-0a1b2c3d4e5f6a7b8c9d"
CHANNEL_CLOSED = "PRECONDITION_FAILED"
DELIVER = "payments.tasks.deliver_shop_event"
SWEEP = "payments.tasks.redeliver_shop_events"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def rabbitmq_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private RabbitMQ node whose consumer timeout is 2 s; its amqp:// URL."""
    if not os.access(RABBITMQ_SERVER, os.X_OK):
        pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    base = tmp_path_factory.mktemp("rabbitmq")
    port, dist_port = free_port(), free_port()
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        "loopback_users = none\n"
        f"consumer_timeout = {CONSUMER_TIMEOUT_MS}\n"
    )
    # The timeout is checked on the channel's tick (every minute by default).
    (base / "advanced.config").write_text("[{rabbit, [{channel_tick_interval, 1000}]}].\n")
    (base / "enabled_plugins").write_text("[].\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(base),  # its own Erlang cookie
        "RABBITMQ_NODENAME": f"merchant-test-{os.getpid()}@localhost",
        "RABBITMQ_CONF_ENV_FILE": "/dev/null",  # not the system node's settings
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_DIST_PORT": str(dist_port),
    }
    log = (base / "server.out").open("wb")
    server = subprocess.Popen(
        [RABBITMQ_SERVER], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the private RabbitMQ node did not start; see {base / 'server.out'}")
            time.sleep(0.5)
        yield f"amqp://guest:guest@127.0.0.1:{port}//"
    finally:
        server.terminate()  # the script stops the node gracefully
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def failing_once_shop() -> Iterator[ScriptedReceiver]:
    shop = ScriptedReceiver(scripted(((500, b"down for a moment"), (204, b"")))).start()
    yield shop
    shop.stop()


def _event_not_enqueued(order: Order, monkeypatch: pytest.MonkeyPatch) -> ShopEventDelivery:
    """A committed event's one delivery, whose first enqueue is left out (the test publishes
    to its node)."""
    monkeypatch.setattr(tasks.deliver_shop_event, "apply_async", lambda *a, **kw: None)
    with transaction.atomic():
        event = shop_events.shop_event_record(order=order, event_type="order.paid")
    monkeypatch.undo()
    assert event is not None
    return ShopEventDelivery.objects.get(event=event)


def _start(start_worker: Callable[..., Any], url: str, shop: str, **env: str) -> Any:
    return start_worker(
        "rabbitmq",
        CELERY_BROKER_URL=url,
        SHOP_WEBHOOK_URL=shop,
        SHOP_WEBHOOK_SECRET=SECRET,
        SHOP_WEBHOOK_TIMEOUT="2",
        **env,
    )


def test_a_retry_longer_than_the_consumer_timeout_waits_in_the_database(
    rabbitmq_url: str,
    start_worker: Callable[..., Any],
    make_order: Callable[..., Order],
    failing_once_shop: ScriptedReceiver,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = failing_once_shop.url, SECRET
    # The first retry (30 s +-20 %) is far past the 2 s timeout, and past the countdown limit.
    worker = _start(
        start_worker, rabbitmq_url, failing_once_shop.url, CELERY_MAX_COUNTDOWN_SECONDS="5"
    )
    broker = celery_app_on(rabbitmq_url)
    delivery = _event_not_enqueued(make_order(), monkeypatch)

    broker.send_task(DELIVER, args=[str(delivery.pk)])
    wait_until(lambda: len(failing_once_shop.received) == 1, 30, "the first attempt")
    wait_until(
        lambda: ShopEventDelivery.objects.get(pk=delivery.pk).last_error != "", 10, "its record"
    )
    due = ShopEventDelivery.objects.get(pk=delivery.pk).next_attempt_at
    assert due is not None and (due - timezone.now()).total_seconds() > 15
    # Beat's sweep, every second (grace 0: whatever is due): nothing is sent before it is due.
    deadline = due + timedelta(seconds=30)
    while ShopEventDelivery.objects.get(pk=delivery.pk).delivered_at is None:
        assert timezone.now() < deadline, "the due retry was not delivered"
        if timezone.now() < due:
            assert len(failing_once_shop.received) == 1, "retried before it was due"
        broker.send_task(SWEEP, kwargs={"grace_seconds": 0})
        time.sleep(1)
    for _ in range(3):  # later sweeps find nothing to send
        broker.send_task(SWEEP, kwargs={"grace_seconds": 0})
    time.sleep(3)

    delivered = ShopEventDelivery.objects.get(pk=delivery.pk)
    assert delivered.delivered_at is not None and delivered.delivered_at >= due
    assert delivered.attempts == 2 and len(failing_once_shop.received) == 2
    log = Path(worker.log_path).read_text()
    assert CHANNEL_CLOSED not in log, log[-3000:]
    assert "Connection to broker lost" not in log, log[-3000:]


def test_a_countdown_held_past_the_consumer_timeout_closes_the_channel(
    rabbitmq_url: str,
    start_worker: Callable[..., Any],
    make_order: Callable[..., Order],
    failing_once_shop: ScriptedReceiver,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trap the other test avoids is real on this node: it would catch a regression."""
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = failing_once_shop.url, SECRET
    worker = _start(start_worker, rabbitmq_url, failing_once_shop.url)
    delivery = _event_not_enqueued(make_order(), monkeypatch)

    # What a countdown retry is: a message the worker holds, unacknowledged, until its time.
    celery_app_on(rabbitmq_url).send_task(DELIVER, args=[str(delivery.pk)], countdown=20)
    wait_until(
        lambda: CHANNEL_CLOSED in Path(worker.log_path).read_text(),
        20,
        "the channel closed: the node's consumer timeout in force",
    )
