"""GET /api/orders/?cursor=...: a cursor the API did not give out is a 400, never a 500.

A cursor is base64 of `o=<offset>&r=<reverse>&p=<position>`, the position being
the `created` timestamp of the row to continue from. Anything a client can
craft in its place gets `{"error": "invalid_cursor", "detail": ...}`.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


CRAFTED = [
    pytest.param("!!!", id="not-base64"),
    pytest.param("cD0x!", id="base64-with-garbage"),
    pytest.param("cD0", id="base64-bad-padding"),
    pytest.param("\u00e9t\u00e9", id="non-ascii"),
    pytest.param(base64.b64encode(b"p=\xff\xfe").decode(), id="non-ascii-inside"),
    pytest.param(b64("p=garbage"), id="position-garbage"),
    pytest.param(b64("p=2024-13-01 00:00:00+00:00"), id="position-month-13"),
    pytest.param(b64("p=2024-01-01"), id="position-a-date"),
    pytest.param(b64("p=2024-01-01 00:00:00"), id="position-naive"),
    pytest.param(b64("p=9999-12-31 23:59:59-14:00"), id="position-past-year-9999"),
    pytest.param(b64("p=0001-01-01 00:00:00+14:00"), id="position-before-year-1"),
    pytest.param(b64("p=" + "9" * 5000), id="position-huge-number"),
    pytest.param(b64("o=-1"), id="offset-negative"),
    pytest.param(b64("o=abc"), id="offset-not-a-number"),
    pytest.param(b64("r=x"), id="reverse-not-a-number"),
]


@pytest.mark.parametrize("cursor", CRAFTED)
def test_a_crafted_cursor_is_a_400_with_a_clear_error(
    api_client: APIClient, make_order: Any, cursor: str
) -> None:
    make_order()

    response = api_client.get("/api/orders/", {"cursor": cursor})

    assert response.status_code == 400, response.content
    assert response.json() == {
        "error": "invalid_cursor",
        "detail": "The cursor is not one this API gave out: "
        "start again from the first page, without a cursor.",
    }


@pytest.mark.parametrize("offset", ["99999999999999999999999999", "1001"])
def test_an_offset_past_the_cutoff_is_capped_not_an_error(
    api_client: APIClient, make_order: Any, offset: str
) -> None:
    make_order()

    response = api_client.get("/api/orders/", {"cursor": b64(f"o={offset}")})

    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


def test_the_cursors_the_api_gives_out_walk_forward_and_back(
    api_client: APIClient, make_order: Any
) -> None:
    made = [str(make_order(reference=f"r{n}").id) for n in range(5)]

    first = api_client.get("/api/orders/", {"page_size": 2}).json()
    second = api_client.get(first["next"]).json()
    third = api_client.get(second["next"]).json()
    back = api_client.get(third["previous"]).json()

    walked = [o["id"] for page in (first, second, third) for o in page["results"]]
    assert sorted(walked) == sorted(made) and len(walked) == 5
    assert third["next"] is None
    assert [o["id"] for o in back["results"]] == [o["id"] for o in second["results"]]
    position = parse_qs(base64.b64decode(parse_qs(urlsplit(first["next"]).query)["cursor"][0]))
    assert b"p" in position  # the walk above went through a real position, not only offsets
