"""POST /payments/ipn/: verification before parsing, storage, acknowledgement, audit."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from typing import Any

import pytest
from django.test import Client

from payments.gateway.signing import sign
from payments.models import Notification, Order, Payment, RejectedNotification
from payments.testing import ipn_body, post_ipn, signed_headers
from tests.conftest import service_env

pytestmark = pytest.mark.django_db

OTHER_SECRET = "c2FuZGJveC1tZXJjaGFudC1zZWNyZXQtMg=="


def paid_body(order: Order, **extra: Any) -> bytes:
    return ipn_body(
        transaction=order.transaction, status="paid", amount_int=order.amount_int, **extra
    )


def test_a_signed_paid_notification_is_acknowledged_and_applied(
    client: Client, make_order: Any
) -> None:
    order = make_order()
    body = paid_body(order)

    response = post_ipn(client, body)

    assert response.status_code == 200
    assert response.content == b"[OK]"
    assert response["Content-Type"].startswith("text/plain")
    order.refresh_from_db()
    assert order.status == "paid"
    stored = Notification.objects.get()
    assert bytes(stored.body) == body
    assert stored.outcome == "applied"
    assert stored.order_id == order.pk
    assert stored.applied_at is not None
    assert "Rest-Sign" not in stored.headers and "Rest-Key" in stored.headers
    assert stored.remote_addr == "127.0.0.1"


def test_the_signing_vector_body_verifies_byte_for_byte(client: Client, settings: Any) -> None:
    """The protocol's ipn_paid vector, posted as the gateway would, with its exact signature."""
    settings.GATEWAY_API_KEY = "0c2a6b8e-3f1d-4c55-9a7e-6d1b2f3e4a5c"
    settings.GATEWAY_API_SECRET = (
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
    )
    body = (
        b"id=5b5a6d2e-1c3f-4f0e-8a8b-2f7c9d1e0a11&payment_id=9e8d7c6b-5a49-4837-a2b1-c0d9e8f7a6b5"
        b"&status=paid&amount=12345678&currency=BTC&method=MTGOXBTC&date=2012-10-13+12%3A55%3A45"
        b"&data=order%3D42"
    )
    response = client.post(
        "/payments/ipn/",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={
            "Rest-Key": settings.GATEWAY_API_KEY,
            "Rest-Sign": (
                "E+eJaEUNcRffWbE4NiV5zCjqLjIctyfUlQL01KxiWPbGhu7hdQbnbasVXm2rBfw4BxLVystrQXO2"
                "PoO05rBE2w=="
            ),
        },
    )

    assert response.content == b"[OK]"
    assert Notification.objects.get().outcome == "unknown_transaction"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "unknown_key"),
        ({"Rest-Key": "0c2a6b8e-3f1d-4c55-9a7e-6d1b2f3e4a5c"}, "unknown_key"),
        ({"Rest-Key": None}, "missing_signature"),
        ({"Rest-Key": None, "Rest-Sign": "not base64!"}, "bad_signature"),
        ({"Rest-Key": None, "Rest-Sign": sign(b"another body", OTHER_SECRET)}, "bad_signature"),
        ({"Rest-Key": None, "Rest-Sign": "signed-with-other-secret"}, "bad_signature"),
    ],
)
def test_unverified_requests_are_403_and_change_nothing(
    client: Client, make_order: Any, settings: Any, headers: dict[str, Any], reason: str
) -> None:
    order = make_order()
    body = paid_body(order)
    sent = {
        name: settings.GATEWAY_API_KEY if value is None else value
        for name, value in headers.items()
    }
    if sent.get("Rest-Sign") == "signed-with-other-secret":
        sent["Rest-Sign"] = sign(body, OTHER_SECRET)

    response = client.post(
        "/payments/ipn/", data=body, content_type="application/x-www-form-urlencoded", headers=sent
    )

    assert response.status_code == 403
    assert response.content != b"[OK]"
    order.refresh_from_db()
    assert order.status == "awaiting_payment"
    assert not Notification.objects.exists()
    assert not Payment.objects.exists()
    audit = RejectedNotification.objects.get()
    assert audit.reason == reason
    assert audit.count == 1


def test_a_signature_over_a_body_with_one_more_byte_is_rejected(
    client: Client, make_order: Any
) -> None:
    order = make_order()
    body = paid_body(order)
    headers = signed_headers(body)
    response = client.post(
        "/payments/ipn/",
        data=body + b"\n",
        content_type=headers.pop("Content-Type"),
        headers=headers,
    )
    assert response.status_code == 403


def test_a_burst_of_forgeries_is_counted_not_stored_row_by_row(
    client: Client, make_order: Any
) -> None:
    order = make_order()
    for n in range(50):
        body = paid_body(order, data=f"forgery {n}")
        client.post(
            "/payments/ipn/",
            data=body,
            content_type="application/x-www-form-urlencoded",
            headers={"Rest-Key": "x", "Rest-Sign": "y"},
        )

    rows = list(RejectedNotification.objects.order_by("window_start"))
    assert len(rows) <= 2  # one per minute: the burst may straddle a minute boundary
    assert sum(row.count for row in rows) == 50
    assert "data=forgery+0" in rows[0].sample


def test_get_is_405(client: Client) -> None:
    assert client.get("/payments/ipn/").status_code == 405


def test_a_body_over_64_kib_is_413_before_anything_else(client: Client, make_order: Any) -> None:
    body = paid_body(make_order(), data="x" * (64 * 1024))
    response = post_ipn(client, body)
    assert response.status_code == 413
    assert not Notification.objects.exists()
    assert not RejectedNotification.objects.exists()


def test_csrf_is_not_required_on_the_ipn_endpoint(make_order: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    response = post_ipn(strict, paid_body(make_order()))
    assert response.content == b"[OK]"


def test_the_same_body_again_is_stored_once_and_counted(client: Client, make_order: Any) -> None:
    order = make_order()
    body = paid_body(order)

    answers = [post_ipn(client, body).content for _ in range(3)]

    assert answers == [b"[OK]"] * 3
    stored = Notification.objects.get()
    assert stored.times_received == 3
    assert Payment.objects.count() == 1
    assert order.transitions.count() == 1


def test_authentic_but_unreadable_notifications_are_stored_flagged_and_acknowledged(
    client: Client,
) -> None:
    for body in (b"status=paid&id=not-a-uuid", b"\xff\xfe garbage", b""):
        assert post_ipn(client, body).content == b"[OK]"

    outcomes = sorted(Notification.objects.values_list("outcome", "needs_review"))
    assert outcomes == [("invalid", True)] * 3


def test_unknown_transaction_is_stored_flagged_and_acknowledged(client: Client) -> None:
    body = ipn_body(transaction=uuid.uuid4(), status="paid", amount_int=100)
    assert post_ipn(client, body).content == b"[OK]"
    stored = Notification.objects.get()
    assert stored.outcome == "unknown_transaction"
    assert stored.needs_review is True


def test_no_log_line_holds_the_signature_or_the_secret(
    client: Client, make_order: Any, settings: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    order = make_order()
    good = paid_body(order)
    post_ipn(client, good)
    forged = paid_body(order, data="forged")
    client.post(
        "/payments/ipn/",
        data=forged,
        content_type="application/x-www-form-urlencoded",
        headers={"Rest-Key": settings.GATEWAY_API_KEY, "Rest-Sign": sign(forged, OTHER_SECRET)},
    )

    text = caplog.text
    assert "IPN rejected" in text  # the test does read the log
    for secret in (
        settings.GATEWAY_API_SECRET,
        sign(good, settings.GATEWAY_API_SECRET),
        sign(forged, OTHER_SECRET),
    ):
        assert secret not in text


@pytest.mark.django_db(transaction=True)
def test_database_down_is_503_never_ok() -> None:
    """A process whose database does not answer must not acknowledge."""
    probe = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "from payments.testing import ipn_body, post_ipn\n"
        "import uuid\n"
        "body = ipn_body(transaction=uuid.uuid4(), status='paid', amount_int=1)\n"
        "r = post_ipn(Client(SERVER_NAME='localhost'), body)\n"
        "print(r.status_code, r.content)\n"
    )
    env = service_env(DATABASE_URL="postgres://postgres@127.0.0.1:9/nowhere")
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1].startswith("503"), result.stdout + result.stderr
    assert "[OK]" not in result.stdout


def test_a_failure_while_applying_keeps_the_stored_notification(
    client: Client, make_order: Any, monkeypatch: Any
) -> None:
    """A bug in applying rolls back the apply only: the row stays, and a sweep applies it later."""
    from payments.services import notifications
    from payments.services.sweeps import notifications_apply_pending

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug while applying")

    order = make_order()
    monkeypatch.setitem(notifications.HANDLERS, "paid", broken)

    response = post_ipn(client, paid_body(order))

    assert response.content == b"[OK]"  # stored durably: the gateway need not resend
    stored = Notification.objects.get()
    assert stored.outcome == "error" and "a bug while applying" in stored.detail
    assert not Payment.objects.exists()
    order.refresh_from_db()
    assert order.status == "awaiting_payment"

    monkeypatch.undo()
    notifications_apply_pending(older_than_seconds=0)

    stored.refresh_from_db()
    order.refresh_from_db()
    assert stored.outcome == "applied"
    assert order.status == "paid"


def test_a_transient_database_failure_while_applying_is_503_and_writes_nothing(
    client: Client, make_order: Any, monkeypatch: Any
) -> None:
    """A lock timeout or a lost connection is worth the gateway's retry: no [OK], no row."""
    from django.db import OperationalError

    from payments.services import notifications

    def lock_timeout(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("canceling statement due to lock timeout")

    order = make_order()
    body = paid_body(order)
    monkeypatch.setitem(notifications.HANDLERS, "paid", lock_timeout)

    response = post_ipn(client, body)

    assert response.status_code == 503
    assert b"[OK]" not in response.content
    assert not Notification.objects.exists()
    assert not Payment.objects.exists()

    monkeypatch.undo()
    retried = post_ipn(client, body)  # the gateway's retry: the same bytes

    assert retried.content == b"[OK]"
    order.refresh_from_db()
    assert order.status == "paid"
    assert Notification.objects.get().times_received == 1
