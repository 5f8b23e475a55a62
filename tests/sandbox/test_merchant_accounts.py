"""Several merchant accounts at the sandbox: one per shop, each signing its own orders' IPNs.

`manage.py sandbox_account_create` opens one for a new shop in development.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from payments.gateway import signing
from sandbox import services, tasks
from sandbox.accounts import account_create
from sandbox.models import IpnDelivery, SandboxAccount
from tests.sandbox.conftest import Receiver, make_order

pytestmark = pytest.mark.django_db

OK = (200, b"[OK]")


def create_account(*args: str) -> str:
    out = StringIO()
    call_command("sandbox_account_create", *args, stdout=out)
    return out.getvalue()


def test_the_command_opens_an_account_and_prints_its_key_and_secret() -> None:
    printed = create_account("--login", "second-shop")

    account = SandboxAccount.objects.get(login="second-shop")
    assert f"API key id: {account.api_key}" in printed
    assert f"API secret: {account.secret}" in printed
    assert signing.secret_valid(account.secret)
    assert f"shop_create second-shop --gateway-key {account.api_key}" in printed


def test_each_account_gets_its_own_key_and_secret() -> None:
    create_account("--login", "one")
    create_account("--login", "two")

    one, two = SandboxAccount.objects.get(login="one"), SandboxAccount.objects.get(login="two")
    assert one.api_key != two.api_key and one.secret != two.secret


def test_the_secret_can_go_to_a_new_file_readable_by_its_owner_only(tmp_path: Path) -> None:
    secret_file = tmp_path / "shop.secret"

    printed = create_account("--login", "filed", "--secret-file", str(secret_file))

    account = SandboxAccount.objects.get(login="filed")
    assert secret_file.read_text().strip() == account.secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert account.secret not in printed
    assert re.search(rf"--gateway-secret-file \S*{secret_file.name}", printed)

    with pytest.raises(CommandError, match="exists already"):
        create_account("--login", "again", "--secret-file", str(secret_file))
    assert not SandboxAccount.objects.filter(login="again").exists()


def test_the_command_refuses_when_the_sandbox_is_off(settings: Any) -> None:
    settings.SANDBOX_ENABLED = False

    with pytest.raises(CommandError, match="sandbox is off"):
        create_account("--login", "prod")
    assert not SandboxAccount.objects.exists()


def test_each_orders_ipn_is_signed_by_the_account_that_created_it(
    ipn_receiver: Callable[..., Receiver], fast_ipn_retries: Any
) -> None:
    accounts = [account_create(login=f"shop-{n}") for n in range(2)]
    receiver = ipn_receiver(OK, OK)
    deliveries = []
    for account in accounts:
        order = make_order(account, ipn=receiver.url)
        payment = services.payment_pay(order=order, method="account")
        deliveries.append(IpnDelivery.objects.get(payment=payment))

    for delivery in deliveries:
        assert tasks.deliver_ipn.apply(args=[delivery.pk]).successful()

    assert len(receiver.received) == 2
    for received, account, other in zip(
        receiver.received, accounts, reversed(accounts), strict=True
    ):
        assert received.headers["Rest-Key"] == str(account.api_key)
        assert signing.verify(received.body, received.headers["Rest-Sign"], account.secret)
        assert not signing.verify(received.body, received.headers["Rest-Sign"], other.secret)
