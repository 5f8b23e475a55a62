"""The sandbox account's secret is never in the admin's HTML: write-only, shown masked.

Every admin page that names the account is fetched as a superuser and its
whole source searched for the secret's text; a new secret can still be set
(and is checked as base64), and leaving the field empty keeps the old one.
"""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from sandbox.accounts import account_create
from sandbox.models import SandboxAccount

pytestmark = pytest.mark.django_db

SECRET = "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1zaG93bi1pbi10aGUtYWRtaW4tcGFnZXM="
NEW_SECRET = "YW5vdGhlci1zZWNyZXQtdHlwZWQtaW50by10aGUtZm9ybQ=="
ADMIN = "/admin/sandbox/sandboxaccount/"


@pytest.fixture
def account() -> SandboxAccount:
    return account_create(login="shop-one", secret=SECRET)


def html(response: object) -> str:
    assert response.status_code == 200, response.status_code  # type: ignore[attr-defined]
    return response.content.decode()  # type: ignore[attr-defined]


def assert_hidden(page: str, secret: str = SECRET) -> None:
    assert secret not in page
    # Nor a long piece of it (the masked form shows its first 4 characters only).
    assert secret[:12] not in page and secret[-12:] not in page


def change_form(account: SandboxAccount, **fields: str) -> dict[str, str]:
    return {"login": account.login, "api_key": str(account.api_key), "secret": "", **fields}


@pytest.mark.parametrize(
    "page",
    ["", "?q=shop", "{pk}/change/", "{pk}/history/", "{pk}/delete/", "add/"],
)
def test_no_admin_page_shows_the_secret(
    admin_client: Client, account: SandboxAccount, page: str
) -> None:
    assert_hidden(html(admin_client.get(ADMIN + page.format(pk=account.pk))))


def test_the_change_page_shows_it_masked_with_its_length(
    admin_client: Client, account: SandboxAccount
) -> None:
    page = html(admin_client.get(f"{ADMIN}{account.pk}/change/"))

    assert f"{SECRET[:4]}… ({len(SECRET)} characters)" in page
    assert 'type="password"' in page


def test_an_empty_secret_field_keeps_the_secret(
    admin_client: Client, account: SandboxAccount
) -> None:
    response = admin_client.post(
        f"{ADMIN}{account.pk}/change/", change_form(account, login="renamed")
    )

    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.login, account.secret) == ("renamed", SECRET)


def test_a_typed_secret_replaces_it(admin_client: Client, account: SandboxAccount) -> None:
    response = admin_client.post(
        f"{ADMIN}{account.pk}/change/", change_form(account, secret=NEW_SECRET)
    )

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.secret == NEW_SECRET


@pytest.mark.parametrize("bad", ["not base64!", "===="])
def test_a_secret_that_is_not_base64_is_refused_and_not_echoed(
    admin_client: Client, account: SandboxAccount, bad: str
) -> None:
    page = html(admin_client.post(f"{ADMIN}{account.pk}/change/", change_form(account, secret=bad)))

    assert "base64" in page
    assert f'value="{bad}"' not in page
    assert_hidden(page)
    account.refresh_from_db()
    assert account.secret == SECRET


def test_a_form_error_does_not_echo_a_typed_secret(
    admin_client: Client, account: SandboxAccount
) -> None:
    form = change_form(account, login="", secret=NEW_SECRET)

    page = html(admin_client.post(f"{ADMIN}{account.pk}/change/", form))

    assert "This field is required" in page
    assert_hidden(page, NEW_SECRET)
    assert_hidden(page)


def test_adding_an_account_needs_a_secret_and_never_shows_it(admin_client: Client) -> None:
    key = str(uuid.uuid4())
    missing = html(admin_client.post(f"{ADMIN}add/", {"login": "two", "api_key": key}))
    assert "needs a secret" in missing and not SandboxAccount.objects.exists()

    refused = html(
        admin_client.post(f"{ADMIN}add/", {"login": "", "api_key": key, "secret": NEW_SECRET})
    )
    assert_hidden(refused, NEW_SECRET)

    added = admin_client.post(
        f"{ADMIN}add/", {"login": "two", "api_key": key, "secret": NEW_SECRET}, follow=True
    )
    assert_hidden(html(added), NEW_SECRET)
    assert SandboxAccount.objects.get(api_key=key).secret == NEW_SECRET
