"""Production (DJANGO_DEBUG off) refuses to start without its secrets, with clear messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
SECRETS = ("DJANGO_SECRET_KEY", "GATEWAY_API_KEY", "GATEWAY_API_SECRET")


def production_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(
        DJANGO_SETTINGS_MODULE="merchant.settings",
        DJANGO_DEBUG="0",
        VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    env.update(values)
    return env


def run(code: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_manage_py_refuses_without_secret_key_and_credentials(tmp_path: Path) -> None:
    result = run(["manage.py", "check"], production_env(tmp_path))

    assert result.returncode != 0
    assert "payments.E001" in result.stderr and "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "payments.E002" in result.stderr and "GATEWAY_API_KEY" in result.stderr
    assert "payments.E003" in result.stderr and "GATEWAY_API_SECRET" in result.stderr


def test_wsgi_application_refuses_to_load_without_secrets(tmp_path: Path) -> None:
    result = run(["-c", "import merchant.wsgi"], production_env(tmp_path))

    assert result.returncode != 0
    assert "Refusing to start" in result.stderr
    assert "payments.E001" in result.stderr


def test_malformed_credentials_are_named(tmp_path: Path) -> None:
    env = production_env(
        tmp_path, DJANGO_SECRET_KEY="x" * 50, GATEWAY_API_KEY="not-a-uuid", GATEWAY_API_SECRET="%%%"
    )
    result = run(["manage.py", "check"], env)

    assert result.returncode != 0
    assert "payments.E001" not in result.stderr
    assert "GATEWAY_API_KEY is missing or is not a UUID" in result.stderr
    assert "GATEWAY_API_SECRET is missing or is not base64" in result.stderr


def test_production_starts_with_everything_set(tmp_path: Path) -> None:
    env = production_env(
        tmp_path,
        DJANGO_SECRET_KEY="a-long-random-production-secret-key-for-this-test-only-0123456789",
        GATEWAY_API_KEY="0c2a6b8e-3f1d-4c55-9a7e-6d1b2f3e4a5c",
        GATEWAY_API_SECRET="c2FuZGJveC1tZXJjaGFudC1zZWNyZXQtMg==",
    )
    result = run(["-c", "import merchant.wsgi; print('loaded')"], env)

    assert result.returncode == 0, result.stderr
    assert "loaded" in result.stdout
