"""The shop commands: shop_create, shop_list, shop_token (new, --list, --revoke), shop_disable.

Each is run with call_command as an operator would run it, and its output is used
as the operator would use it: the printed token calls the API. `shop_create` is
also run once as `manage.py shop_create` in a process of its own, on the tests'
database. Bad input is a CommandError that says what is wrong, and writes nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from payments.models import ApiToken, Shop
from payments.services.shops import PREFIX_LENGTH
from payments.shops import api_token_digest, shop_default, shop_gateway_credentials
from sandbox.accounts import account_create
from tests.conftest import service_env
from tests.factories import accepted_order

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET = "c2hvcC1iJ3MgZ2F0ZXdheSBzZWNyZXQsIGFzIHRoZSBnYXRld2F5IGdpdmVzIGl0"  # base64
TOKEN_LINE = re.compile(r"^API token: (\w+)$", re.MULTILINE)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def printed_key(output: str) -> str:
    match = TOKEN_LINE.search(output)
    assert match, output
    return match.group(1)


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop-b.secret"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture
def made(db: None, secret_file: Path) -> tuple[Shop, str]:
    """Shop B, made by the command: the shop and its printed first token."""
    out, _ = run(
        "shop_create", "shop-b", "--gateway-key", str(uuid.uuid4()),
        "--gateway-secret-file", str(secret_file),
    )  # fmt: skip
    return Shop.objects.get(name="shop-b"), printed_key(out)


# --- shop_create -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_shop_create_prints_the_id_and_a_first_token_that_opens_the_api(
    secret_file: Path,
) -> None:
    key_id = uuid.uuid4()
    out, _ = run(
        "shop_create", "shop-b", "--gateway-key", str(key_id),
        "--gateway-secret-file", str(secret_file),
        "--return-host", "shop-b.example", "--return-host", "https://pay.shop-b.example",
        "--order-ttl", "600", "--underpaid-tolerance", "0.02",
    )  # fmt: skip

    shop = Shop.objects.get(name="shop-b")
    assert f"Shop id: {shop.pk}\n" in out
    key = printed_key(out)
    assert SECRET not in out
    assert (shop.gateway_key, shop.active, shop.is_default) == (key_id, True, False)
    assert shop.return_hosts == ["shop-b.example", "https://pay.shop-b.example"]
    assert (shop.order_ttl_seconds, str(shop.underpaid_tolerance)) == (600, "0.020000")
    assert SECRET not in shop.gateway_secret_sealed  # sealed, not in clear
    assert shop_gateway_credentials(shop=shop).api_secret == SECRET
    token = ApiToken.objects.get(shop=shop)
    assert token.key_sha256 == api_token_digest(key) and not token.read_only
    assert api(key).get("/api/orders/").json()["results"] == []


@pytest.mark.django_db(transaction=True)
def test_a_created_shops_token_creates_orders_with_its_gateway_account(
    live_gateway: str, tmp_path: Path
) -> None:
    account = account_create(login="shop-b")
    (tmp_path / "secret").write_text(account.secret)
    out, _ = run(
        "shop_create", "shop-b", "--gateway-key", str(account.api_key),
        "--gateway-secret-file", str(tmp_path / "secret"),
    )  # fmt: skip

    answer = api(printed_key(out)).post(
        "/api/orders/", {"reference": "r", "amount": "0.5", "currency": "BTC"}, format="json"
    )

    assert answer.status_code == 201, answer.content
    assert account.orders.get().transaction == uuid.UUID(answer.json()["transaction"])


@pytest.mark.django_db
def test_shop_create_with_a_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_B_SECRET", raising=False)
    _, warned = run(
        "shop_create", "shop-b", "--gateway-key", str(uuid.uuid4()),
        "--gateway-secret-env", "SHOP_B_SECRET",
    )  # fmt: skip

    shop = Shop.objects.get(name="shop-b")
    assert (shop.gateway_secret_env, shop.gateway_secret_sealed) == ("SHOP_B_SECRET", "")
    assert "SHOP_B_SECRET is not set in this environment" in warned
    monkeypatch.setenv("SHOP_B_SECRET", SECRET)
    assert shop_gateway_credentials(shop=shop).api_secret == SECRET


def create_args(secret_file: Path, **changes: Any) -> list[str]:
    args = {
        "name": "shop-b",
        "--gateway-key": str(uuid.uuid4()),
        "--gateway-secret-file": str(secret_file),
    }
    args.update(changes)
    flat = ["shop_create", args.pop("name")]
    for option, value in args.items():
        if value is not None:
            flat += [option, value]
    return flat


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"--gateway-key": "not-a-key"}, "is not a gateway API key id"),
        ({"--gateway-secret-file": "/no/such/file"}, "cannot read the gateway secret file"),
        ({"--gateway-secret-file": "not base64!"}, "does not hold a base64 secret"),
        ({"--gateway-secret-file": "empty"}, "does not hold a base64 secret"),
        ({"--return-host": "https://shop-b.example/thanks"}, "return host"),
        ({"--underpaid-tolerance": "1.5"}, "fraction in [0, 1)"),
        ({"--underpaid-tolerance": "lots"}, "is not a decimal fraction"),
        ({"--order-ttl": "0"}, "at least 1 second"),
        ({"--gateway-secret-file": None}, "one of the arguments"),
        ({"--gateway-secret-env": "SOME_VAR"}, "not allowed with argument"),
        ({"--gateway-secret-file": None, "--gateway-secret-env": "NOT A NAME"}, "is not an"),
        ({"--gateway-key": settings.GATEWAY_API_KEY}, "default shop's gateway key"),
    ],
)
def test_shop_create_refuses_bad_input_and_writes_nothing(
    secret_file: Path, tmp_path: Path, changes: dict[str, Any], says: str
) -> None:
    bad_files = {"not base64!": "this is not base64!\n", "empty": ""}
    name = changes.get("--gateway-secret-file")
    if name in bad_files:
        (tmp_path / name).write_text(bad_files[name])
        changes = {**changes, "--gateway-secret-file": str(tmp_path / name)}
    before = Shop.objects.count()

    with pytest.raises(CommandError, match=re.escape(says)):
        run(*create_args(secret_file, **changes))

    assert Shop.objects.count() == before
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_shop_create_refuses_a_taken_name_or_key(made: tuple[Shop, str], secret_file: Path) -> None:
    shop, _ = made
    with pytest.raises(CommandError, match="a shop named 'shop-b' exists already"):
        run(*create_args(secret_file))
    with pytest.raises(CommandError, match="another shop has this gateway key"):
        run(*create_args(secret_file, name="shop-c", **{"--gateway-key": str(shop.gateway_key)}))
    assert Shop.objects.filter(is_default=False).count() == 1
    assert ApiToken.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_manage_py_shop_create_in_a_process_of_its_own(secret_file: Path) -> None:
    key_id = uuid.uuid4()
    # The same secret key as this process, so that it can open the secret the command seals.
    env = service_env(DJANGO_SECRET_KEY=settings.SECRET_KEY)

    result = subprocess.run(
        [sys.executable, "manage.py", "shop_create", "shop-b", "--gateway-key", str(key_id),
         "--gateway-secret-file", str(secret_file)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    shop = Shop.objects.get(gateway_key=key_id)
    assert f"Shop id: {shop.pk}" in result.stdout
    assert shop_gateway_credentials(shop=shop).api_secret == SECRET
    assert api(printed_key(result.stdout)).get("/api/orders/").status_code == 200
    failed = subprocess.run(
        [sys.executable, "manage.py", "shop_create", "shop-b", "--gateway-key", str(key_id),
         "--gateway-secret-file", str(secret_file)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1
    assert "CommandError: a shop named 'shop-b' exists already" in failed.stderr


# --- shop_list -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_shop_list_shows_each_shop_and_no_secret(made: tuple[Shop, str]) -> None:
    shop, key = made
    run("shop_token", "shop-b", "--name", "second")
    run("shop_token", "shop-b", "--revoke", ApiToken.objects.get(name="second").prefix)
    accepted_order(shop=shop)
    accepted_order(shop=shop)
    default = shop_default()
    accepted_order(shop=default)

    out, _ = run("shop_list")

    header, *lines = out.splitlines()
    assert header.split() == [
        "name",
        "id",
        "active",
        "gateway",
        "key",
        "id",
        "secret",
        "tokens",
        "orders",
    ]
    rows = {line.split()[0]: line.split() for line in lines}
    assert rows["shop-b"] == [
        "shop-b",
        str(shop.pk),
        "yes",
        str(shop.gateway_key),
        "sealed",
        "1",
        "2",
    ]
    assert rows["default"] == [
        "default", "(default)", str(default.pk), "yes", settings.GATEWAY_API_KEY,
        "$GATEWAY_API_SECRET", "0", "1",
    ]  # fmt: skip
    for secret in (SECRET, key, settings.GATEWAY_API_SECRET, shop.gateway_secret_sealed):
        assert secret not in out


# --- shop_token ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_shop_token_prints_a_new_token_once(made: tuple[Shop, str]) -> None:
    shop, first = made

    out, _ = run("shop_token", "shop-b", "--name", "reporting", "--read-only")

    key = printed_key(out)
    assert key != first and "read-only API token 'reporting'" in out
    token = ApiToken.objects.get(key_sha256=api_token_digest(key))
    assert (token.shop, token.name, token.read_only) == (shop, "reporting", True)
    assert api(key).get("/api/orders/").status_code == 200
    refused = api(key).post("/api/orders/", {}, format="json")
    assert (refused.status_code, refused.json()["error"]) == (403, "read_only_token")
    listed, _ = run("shop_token", "shop-b", "--list")
    assert key not in listed and first not in listed
    assert f"{key[:PREFIX_LENGTH]}...  read-only" in listed
    assert f"{first[:PREFIX_LENGTH]}...  read-write" in listed


@pytest.mark.django_db
def test_shop_token_revoke_by_prefix_refuses_that_token(made: tuple[Shop, str]) -> None:
    _, first = made
    second = printed_key(run("shop_token", "shop-b")[0])

    out, _ = run("shop_token", "shop-b", "--revoke", first[:PREFIX_LENGTH] + "...")

    assert "Revoked:" in out
    refused = api(first).get("/api/orders/")
    assert (refused.status_code, refused.json()["error"]) == (401, "token_revoked")
    assert api(second).get("/api/orders/").status_code == 200
    assert "revoked" in run("shop_token", "shop-b", "--list")[0]
    with pytest.raises(CommandError, match="has no live token"):
        run("shop_token", "shop-b", "--revoke", first[:PREFIX_LENGTH])  # revoked already


@pytest.mark.django_db
def test_shop_token_revoke_refuses_an_unknown_or_ambiguous_prefix(made: tuple[Shop, str]) -> None:
    shop, first = made
    second = printed_key(run("shop_token", "shop-b")[0])
    ApiToken.objects.filter(shop=shop).update(prefix="mp_same00")

    with pytest.raises(CommandError, match="2 live tokens of shop shop-b have the prefix"):
        run("shop_token", "shop-b", "--revoke", "mp_same00")
    with pytest.raises(CommandError, match="has no live token 'mp_nope00'"):
        run("shop_token", "shop-b", "--revoke", "mp_nope00")
    run("shop_token", "shop-b", "--revoke", second)  # the whole key: unambiguous

    assert api(first).get("/api/orders/").status_code == 200
    assert api(second).get("/api/orders/").status_code == 401


@pytest.mark.django_db
def test_a_token_of_another_shop_is_not_revoked_by_its_prefix(made: tuple[Shop, str]) -> None:
    _, key = made
    run("shop_token", "default", "--name", "other")  # the default shop exists
    with pytest.raises(CommandError, match="has no live token"):
        run("shop_token", "default", "--revoke", key[:PREFIX_LENGTH])
    assert api(key).get("/api/orders/").status_code == 200


# --- shop_disable, and a missing shop -----------------------------------------------------------


@pytest.mark.django_db
def test_shop_disable_refuses_the_shops_tokens(made: tuple[Shop, str]) -> None:
    shop, key = made

    out, _ = run("shop_disable", "shop-b")

    shop.refresh_from_db()
    assert not shop.active and "disabled" in out
    refused = api(key).get("/api/orders/")
    assert (refused.status_code, refused.json()["error"]) == (401, "shop_disabled")
    assert "disabled already" in run("shop_disable", "shop-b")[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [("shop_token", "shop-x"), ("shop_token", "shop-x", "--list"), ("shop_disable", "shop-x")],
)
def test_a_missing_shop_is_a_command_error(args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError, match="no shop named 'shop-x'"):
        run(*args)


# --- bootstrap (`make run`): the default shop's first token ----------------------------------


@pytest.fixture
def bootstrap_env(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DEBUG = False  # no var/dev.env: the tests' settings give the credentials
    monkeypatch.delenv("SHOP_API_TOKEN", raising=False)
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "unused-password-123")


@pytest.mark.django_db(transaction=True)
def test_bootstrap_makes_the_default_shops_first_token_once(bootstrap_env: None) -> None:
    first, _ = run("bootstrap")
    again, _ = run("bootstrap")

    key = printed_key(first)
    assert "shown only this once" in first
    token = ApiToken.objects.get()
    assert token.shop == shop_default() and token.key_sha256 == api_token_digest(key)
    assert "API token exists\n" in again and key not in again
    assert api(key).get("/api/orders/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_bootstrap_stores_shop_api_token_hashed(
    bootstrap_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = "given-token-0123456789abcdef"
    monkeypatch.setenv("SHOP_API_TOKEN", given)

    outputs = [run("bootstrap")[0], run("bootstrap")[0]]

    assert all("API token exists (from SHOP_API_TOKEN)" in out for out in outputs)
    assert all(given not in out for out in outputs)
    token = ApiToken.objects.get()  # once, however often it runs
    assert (token.shop, token.key_sha256) == (shop_default(), api_token_digest(given))
    assert api(given).get("/api/orders/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_bootstrap_refuses_a_guessable_shop_api_token(
    bootstrap_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_API_TOKEN", "secret")
    with pytest.raises(CommandError, match="SHOP_API_TOKEN: an API token is 20 to 128"):
        run("bootstrap")
    assert not ApiToken.objects.exists()
