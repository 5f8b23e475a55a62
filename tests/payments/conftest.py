"""Fixtures for the payments tests: API clients, orders in a given state, the live sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import api_token_key


@pytest.fixture
def api_client(db: None) -> APIClient:
    """A client with an API token of the default shop (as `make run` prints one)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key()}")
    return client


@pytest.fixture
def live_gateway(live_server: Any, settings: Any, tmp_path: Path) -> str:
    """The service and the sandbox gateway on one live HTTP server; returns its URL.

    The live server outlives the test (same URL, same cache keys), so each test
    gets a cache of its own: the configured kind (files), in a fresh folder.
    """
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    url = live_server.url
    settings.PUBLIC_BASE_URL = url
    settings.GATEWAY_API_URL = f"{url}/sandbox/api/"
    settings.GATEWAY_PAYMENT_HOST = f"{url}/sandbox"
    return url
