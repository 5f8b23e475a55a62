"""Test settings: the project's settings with a var/ of their own and fixed credentials.

Everything else (DATABASE_URL, CELERY_BROKER_URL) comes from the environment
exactly as in production, so the same suite runs on the embedded defaults and
on PostgreSQL + Redis.
"""

import os
from pathlib import Path

# The suite runs in development mode, as `make run` does (production is the default);
# tests of production set DJANGO_DEBUG=0 for the processes they start.
os.environ.setdefault("DJANGO_DEBUG", "1")
# A queue folder and SQLite file apart from a `make run` that may be running.
os.environ.setdefault("VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
os.environ.setdefault("GATEWAY_API_KEY", "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f")
os.environ.setdefault(
    "GATEWAY_API_SECRET",
    # base64 of 64 bytes, as the gateway issues them; a test value, not a secret.
    "dGVzdC1zZWNyZXQtZm9yLXRoZS1tZXJjaGFudC1wYXltZW50cy1zdWl0ZS0wMTIzNDU2Nzg5YWJjZGVmMDEyMw==",
)
# One secret key for the test process and every process it starts (workers, servers):
# secrets sealed in the database (payments.secret_box: webhook endpoints, shops) are
# opened by another process than the one that sealed them, as in production.
os.environ.setdefault(
    "DJANGO_SECRET_KEY", "test-only-secret-key-shared-by-every-test-process-0123456789abcdef"
)
# No order-creation throttle: tests that create more of a shop's orders than a rate allows
# would be refused. tests/payments/test_abuse.py turns it on.
os.environ.setdefault("API_ORDER_CREATE_RATE", "")
# Tests make the sandbox account themselves (tests/sandbox/test_accounts.py: created or not).
os.environ.setdefault("SANDBOX_ACCOUNT_ON_MIGRATE", "0")

from merchant.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
