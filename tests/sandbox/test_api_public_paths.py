"""Public methods under every path and in every form the protocol pages write them.

The pages show public methods as URLs a browser opens (`1/BTCUSD/ticker`,
`1/generic/currency?currency=<CUR>`: a GET with the parameter in the query
string), the v1 API also serves them under `public/`, and the clients POST a
form body: each of these works, with the same answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.sandbox.conftest import API, USER_AGENT, assert_error

UA = {"User-Agent": USER_AGENT}
FORM = "application/x-www-form-urlencoded"
TICKER_PATHS = ["1/BTCUSD/ticker", "1/BTCUSD/public/ticker"]
CURRENCY_PATHS = ["1/generic/currency", "1/generic/public/currency"]


def success(response: Any) -> Any:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["result"] == "success", body
    return body["return"]


@pytest.mark.parametrize("path", TICKER_PATHS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_the_ticker_answers_on_both_paths_to_get_and_post(
    client: Client, path: str, method: str
) -> None:
    ticker = success(getattr(client, method)(API + path, headers=UA))

    assert ticker["last"]["currency"] == "USD"
    assert ticker == success(client.get(API + "1/BTCUSD/ticker", headers=UA))


@pytest.mark.parametrize("path", ["1/BTCXYZ/public/ticker", "1/BTCusd/public/ticker"])
def test_the_public_ticker_path_checks_the_currency(client: Client, path: str) -> None:
    assert_error(client.get(API + path, headers=UA), "invalid_parameter", 400, "currency")


@pytest.mark.parametrize("path", CURRENCY_PATHS)
@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda c, url: c.get(url + "?currency=JPY", headers=UA), id="get-query"),
        pytest.param(lambda c, url: c.post(url + "?currency=JPY", headers=UA), id="post-query"),
        pytest.param(
            lambda c, url: c.post(url, "currency=JPY", content_type=FORM, headers=UA),
            id="post-body",
        ),
        pytest.param(
            lambda c, url: c.post(url + "?unused=1", "currency=JPY", content_type=FORM, headers=UA),
            id="post-query-and-body",
        ),
    ],
)
def test_currency_takes_its_parameter_from_the_query_string_or_the_body(
    client: Client, path: str, send: Any
) -> None:
    described = success(send(client, API + path))

    assert (described["currency"], described["decimals"], described["virtual"]) == (
        "JPY",
        "3",
        "N",
    )


def test_a_parameter_in_both_the_query_string_and_the_body_is_a_repeated_one(
    client: Client,
) -> None:
    response = client.post(
        API + "1/generic/currency?currency=USD", "currency=EUR", content_type=FORM, headers=UA
    )

    assert_error(response, "invalid_parameter", 400, "more than once")


@pytest.mark.parametrize("path", [*TICKER_PATHS, *CURRENCY_PATHS])
def test_public_paths_keep_the_checks_of_the_api(client: Client, path: str) -> None:
    assert_error(client.get(API + path + "?currency=USD"), "user_agent_required", 403)
    assert_error(client.put(API + path, headers=UA), "method_not_allowed", 405)


def test_a_public_post_body_is_still_bounded(client: Client, settings: Any) -> None:
    settings.SANDBOX_MAX_REQUEST_BYTES = 64
    body = "currency=USD&pad=" + "x" * 64

    response = client.post(API + "1/generic/public/currency", body, content_type=FORM, headers=UA)

    assert_error(response, "request_too_large", 413)


@pytest.mark.parametrize("path", ["1/generic/public/info", "1/BTCUSD/public/depth"])
def test_public_prefix_does_not_open_other_methods(client: Client, path: str) -> None:
    assert_error(client.get(API + path, headers=UA), "unknown_method", 404)
