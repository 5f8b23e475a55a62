"""Fixtures for the payments tests: an API client of the default shop, the events world."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import api_token_key
from tests.payments.events_world import World, build_world


@pytest.fixture
def api_client(db: None) -> APIClient:
    """A client with an API token of the default shop (as `make run` prints one)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key()}")
    return client


@pytest.fixture
def world(enqueued: list[str], settings: Any) -> Iterator[World]:
    """Two shops with orders, events and endpoints (tests.payments.events_world), quick
    timeouts; its receivers stopped after the test."""
    settings.SHOP_WEBHOOK_TIMEOUT = 1.0
    settings.SHOP_WEBHOOK_RETRY_HOURS = 24
    built = build_world()
    enqueued.clear()
    yield built
    for server in built.servers():
        server.stop()
