"""ensure_configured_account(): the sandbox account for GATEWAY_API_KEY / GATEWAY_API_SECRET."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from sandbox.accounts import account_create, account_for_key, ensure_configured_account
from sandbox.models import SandboxAccount

pytestmark = pytest.mark.django_db


def test_creates_once_then_reuses(settings: Any) -> None:
    account, created = ensure_configured_account()
    again, created_again = ensure_configured_account()

    assert created and not created_again
    assert again.pk == account.pk
    assert account.api_key == uuid.UUID(settings.GATEWAY_API_KEY)
    assert account.secret == settings.GATEWAY_API_SECRET
    assert SandboxAccount.objects.count() == 1


def test_a_changed_secret_is_updated(settings: Any) -> None:
    ensure_configured_account()
    settings.GATEWAY_API_SECRET = "bmV3LXNlY3JldA=="

    account, created = ensure_configured_account()

    assert not created
    assert SandboxAccount.objects.get(pk=account.pk).secret == "bmV3LXNlY3JldA=="


def test_the_lazy_path_creates_but_never_changes_the_secret(settings: Any) -> None:
    created = account_for_key(rest_key=settings.GATEWAY_API_KEY)
    assert created is not None and created.secret == settings.GATEWAY_API_SECRET

    # The gateway is another party: a service signing with another secret is
    # not re-provisioned by its own request (only by ensure_configured_account).
    settings.GATEWAY_API_SECRET = "dGhpcmQtc2VjcmV0"
    found = account_for_key(rest_key=settings.GATEWAY_API_KEY)
    assert found is not None and found.secret != "dGhpcmQtc2VjcmV0"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("", "c2VjcmV0"),
        ("not-a-uuid", "c2VjcmV0"),
        ("6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f", ""),
        ("6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f", "not base64!"),
    ],
)
def test_unusable_settings_are_refused(settings: Any, key: str, secret: str) -> None:
    settings.GATEWAY_API_KEY, settings.GATEWAY_API_SECRET = key, secret

    with pytest.raises(ImproperlyConfigured):
        ensure_configured_account()
    assert not SandboxAccount.objects.exists()


def test_other_accounts_get_fresh_credentials() -> None:
    one, two = account_create(login="a"), account_create(login="b")

    assert one.api_key != two.api_key and one.secret != two.secret
    assert account_for_key(rest_key=str(one.api_key)) == one
    assert account_for_key(rest_key="garbage") is None
    assert account_for_key(rest_key=None) is None
