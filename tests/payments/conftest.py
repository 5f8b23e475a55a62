"""Fixtures for the payments tests: API clients, orders in a given state, the live sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def shop_user(db: None) -> Any:
    return get_user_model().objects.create_user("shop", password="unused-password-123")


@pytest.fixture
def api_client(shop_user: Any) -> APIClient:
    token = Token.objects.create(user=shop_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
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
