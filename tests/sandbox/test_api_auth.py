"""Authentication of private calls, in the contract's order, and each error token."""

from __future__ import annotations

import base64

import pytest

from payments.gateway import signing
from sandbox.accounts import account_create
from sandbox.models import SandboxAccount, SandboxOrder
from tests.sandbox.conftest import API, ORDER_CREATE, ORDER_FIELDS, Api, assert_error

pytestmark = pytest.mark.django_db


def last_nonce(account: SandboxAccount) -> int:
    account.refresh_from_db()
    return account.last_nonce


def test_a_signed_order_create_succeeds_and_advances_the_nonce(
    api: Api, account: SandboxAccount
) -> None:
    response = api.create_order()

    assert response.status_code == 200, response.content
    assert response.json()["result"] == "success"
    assert last_nonce(account) == api.nonce


@pytest.mark.parametrize("user_agent", [None, "", "   "])
def test_a_missing_or_empty_user_agent_is_refused_first(
    api: Api, account: SandboxAccount, user_agent: str | None
) -> None:
    # Everything else is wrong too: the User-Agent is checked first.
    response = api.create_order(user_agent=user_agent, key="not-a-uuid", sign="bad")

    assert_error(response, "user_agent_required", 403)
    assert last_nonce(account) == 0


def test_user_agent_is_required_for_public_methods_and_unknown_paths(client) -> None:
    assert_error(client.get(API + "1/BTCUSD/ticker"), "user_agent_required", 403)
    assert_error(client.post(API + "1/nope"), "user_agent_required", 403)


@pytest.mark.parametrize(
    "key",
    [
        None,  # missing
        "",
        "not-a-uuid",
        "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5",  # one digit short
        "11111111-2222-4333-8444-555555555555",  # well formed, unknown
    ],
)
def test_a_missing_malformed_or_unknown_rest_key_is_refused(
    api: Api, account: SandboxAccount, key: str | None
) -> None:
    response = api.create_order(key=key, sign="bad")  # the key comes before the sign

    assert_error(response, "login_error_invalid_rest_key", 403)
    assert last_nonce(account) == 0
    assert not SandboxOrder.objects.exists()


@pytest.mark.parametrize(
    "sign",
    [
        None,  # missing
        "",
        "%%% not base64 %%%",
        base64.b64encode(b"\x00" * 64).decode(),  # base64, wrong value
        base64.b64encode(b"short").decode(),  # wrong length
    ],
)
def test_a_missing_or_wrong_rest_sign_is_refused(
    api: Api, account: SandboxAccount, sign: str | None
) -> None:
    response = api.create_order(sign=sign)

    assert_error(response, "login_error_invalid_rest_sign", 403)
    assert last_nonce(account) == 0
    assert not SandboxOrder.objects.exists()


def test_the_signature_is_checked_on_the_raw_body_bytes(api: Api, account: SandboxAccount) -> None:
    # Two encodings of the same fields: signing one and sending the other fails,
    # although a parser would see identical parameters.
    fields = {**ORDER_FIELDS, "description": "a b"}
    sent = api.body(fields, nonce=5)
    signed = sent.replace(b"description=a+b", b"description=a%20b")
    assert sent != signed

    response = api.raw(ORDER_CREATE, sent, sign=signing.sign(signed, api.secret))
    assert_error(response, "login_error_invalid_rest_sign", 403)

    response = api.raw(ORDER_CREATE, signed)  # signed as sent: accepted
    assert response.status_code == 200, response.content
    assert SandboxOrder.objects.get().description == "a b"


def test_another_accounts_secret_does_not_sign_for_this_key(
    api: Api, account: SandboxAccount
) -> None:
    other = account_create(login="someone-else")
    body = api.body(ORDER_FIELDS, nonce=7)

    response = api.raw(ORDER_CREATE, body, sign=signing.sign(body, other.secret))

    assert_error(response, "login_error_invalid_rest_sign", 403)


@pytest.mark.parametrize(
    "nonce_fields",
    [
        [],  # missing
        [("nonce", "")],
        [("nonce", "abc")],
        [("nonce", "-5")],
        [("nonce", "0")],
        [("nonce", "1.5")],
        [("nonce", "1e9")],
        [("nonce", "99999999999999999999")],  # beyond 64 bits
        [("nonce", "5"), ("nonce", "6")],  # repeated
    ],
)
def test_a_missing_or_malformed_nonce_is_refused(
    api: Api, account: SandboxAccount, nonce_fields: list[tuple[str, str]]
) -> None:
    body = api.body([*ORDER_FIELDS.items(), *nonce_fields], nonce=None)

    assert_error(api.raw(ORDER_CREATE, body), "login_error_invalid_nonce", 403)
    assert last_nonce(account) == 0


def test_a_repeated_or_smaller_nonce_is_refused(api: Api, account: SandboxAccount) -> None:
    ok = api.call(ORDER_CREATE, ORDER_FIELDS, nonce=100)
    assert ok.status_code == 200, ok.content

    assert_error(api.call(ORDER_CREATE, ORDER_FIELDS, nonce=100), "login_error_invalid_nonce", 403)
    assert_error(api.call(ORDER_CREATE, ORDER_FIELDS, nonce=99), "login_error_invalid_nonce", 403)
    assert last_nonce(account) == 100
    assert SandboxOrder.objects.count() == 1

    assert api.call(ORDER_CREATE, ORDER_FIELDS, nonce=101).status_code == 200


def test_rejected_requests_never_advance_the_nonce(api: Api, account: SandboxAccount) -> None:
    # Bad signature, then a parameter error, each with a high nonce...
    assert_error(
        api.call(ORDER_CREATE, ORDER_FIELDS, nonce=500, sign="AAAA"),
        "login_error_invalid_rest_sign",
        403,
    )
    assert_error(
        api.call(ORDER_CREATE, {**ORDER_FIELDS, "currency": "XXX"}, nonce=600),
        "invalid_parameter",
        400,
    )
    assert last_nonce(account) == 0
    # ...so a smaller nonce is still good.
    assert api.call(ORDER_CREATE, ORDER_FIELDS, nonce=10).status_code == 200
    assert last_nonce(account) == 10


def test_a_stale_nonce_is_reported_before_a_parameter_error(
    api: Api, account: SandboxAccount
) -> None:
    assert api.call(ORDER_CREATE, ORDER_FIELDS, nonce=50).status_code == 200

    response = api.call(ORDER_CREATE, {"currency": "XXX"}, nonce=40)

    assert_error(response, "login_error_invalid_nonce", 403)


def test_unknown_methods_are_404(api: Api) -> None:
    for method in ["1/generic/private/nope", "0/info.php", "1/generic/private/info/", "2/x"]:
        assert_error(api.call(method, {}), "unknown_method", 404)


def test_private_methods_want_post(client, api: Api) -> None:
    response = client.get(
        API + "1/generic/private/info", headers={"User-Agent": "t", "Rest-Key": api.key}
    )
    assert_error(response, "method_not_allowed", 405)


def test_a_body_over_the_limit_is_413(api: Api, account: SandboxAccount, settings) -> None:
    settings.SANDBOX_MAX_REQUEST_BYTES = 1024
    response = api.create_order({"description": "x" * 2000})

    assert_error(response, "request_too_large", 413)
    assert last_nonce(account) == 0


def test_a_body_that_is_not_form_data_is_an_invalid_parameter(
    api: Api, account: SandboxAccount
) -> None:
    body = b"nonce=5&description=\xff\xfe"
    assert_error(api.raw(ORDER_CREATE, body), "invalid_parameter", 400, "body")
    assert last_nonce(account) == 0


def test_the_configured_account_is_created_lazily_on_first_use(api: Api) -> None:
    SandboxAccount.objects.all().delete()

    response = api.create_order()

    assert response.status_code == 200, response.content
    assert SandboxAccount.objects.get().api_key.hex == api.key.replace("-", "")


def test_a_service_signing_with_another_secret_is_refused(
    api: Api, account: SandboxAccount, settings
) -> None:
    settings.GATEWAY_API_SECRET = "c2FuZGJveC1tZXJjaGFudC1zZWNyZXQtMg=="
    api.secret = settings.GATEWAY_API_SECRET

    assert_error(api.create_order(), "login_error_invalid_rest_sign", 403)
