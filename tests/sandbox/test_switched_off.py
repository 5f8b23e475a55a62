"""The sandbox answers 404 when it is not switched on, whatever DEBUG is.

Its URLs are mounted when the URLconf loads (merchant/urls.py), so each case
loads it again with the settings of the case, and the suite's own afterwards.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import clear_url_caches

import merchant.urls

pytestmark = pytest.mark.django_db

PATHS = [
    "/sandbox/",
    "/sandbox/api/1/BTCUSD/ticker",
    "/sandbox/api/1/generic/private/merchant/order/create",
    "/sandbox/js/button.min.js",
    "/sandbox/pay/6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f",
]


@contextmanager
def urls_with(**values: Any) -> Iterator[None]:
    """The URLconf loaded under `values`; loaded again under the suite's own settings after."""
    try:
        with override_settings(**values):
            clear_url_caches()
            importlib.reload(merchant.urls)
            yield
    finally:
        clear_url_caches()
        importlib.reload(merchant.urls)


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", PATHS)
def test_the_sandbox_is_404_when_off(debug: bool, path: str) -> None:
    with urls_with(DEBUG=debug, SANDBOX_ENABLED=False):
        assert Client().get(path).status_code == 404
        assert Client().post(path, data=b"nonce=1", content_type="text/plain").status_code == 404


def test_the_sandbox_answers_when_on() -> None:
    with urls_with(SANDBOX_ENABLED=True):
        assert Client().get("/sandbox/").status_code == 200
