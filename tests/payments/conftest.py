"""Fixtures for the payments tests: an API client of the default shop."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import api_token_key


@pytest.fixture
def api_client(db: None) -> APIClient:
    """A client with an API token of the default shop (as `make run` prints one)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_key()}")
    return client
