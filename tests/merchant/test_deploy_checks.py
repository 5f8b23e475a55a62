"""`make serve` refuses a bad production with the deploy check's id and hint; a good one passes.

Each bad setting is tried through the operator's own command, `make serve`, in a
process of its own with production's environment (no DJANGO_DEBUG): it must
stop before it migrates anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET_KEY = "k7Qw-production-secret-key-for-the-deploy-check-tests-0123456789abcdefXYZ"
GOOD = {
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "GATEWAY_API_KEY": "0c2a6b8e-3f1d-4c55-9a7e-6d1b2f3e4a5c",
    "GATEWAY_API_SECRET": "c2FuZGJveC1tZXJjaGFudC1zZWNyZXQtMg==",
    "PUBLIC_BASE_URL": "https://pay.shop.example",
    "GATEWAY_API_URL": "https://gateway.example/api/",
    "GATEWAY_PAYMENT_HOST": "https://payment.gateway.example",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/merchant_never_used",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "CACHE_URL": "rediscache://127.0.0.1:6379/1",
}
DEV = ("DJANGO_DEBUG", "SANDBOX_ENABLED", "DEMO_SHOP_ENABLED", "DEPLOY_SINGLE_MACHINE")


def production_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The tests' environment less anything of the service's, plus a complete production one."""
    ours = ("DJANGO_", "GATEWAY_", "SANDBOX_", "DEMO_SHOP_", "PAYMENTS_", "DEPLOY_", "CACHE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    env.update(GOOD, VAR_DIR=str(tmp_path))
    env.update(values)
    return {k: v for k, v in env.items() if v != ""}


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("values", "check_id", "hint"),
    [
        ({"DJANGO_DEBUG": "1"}, "payments.E101", "Unset DJANGO_DEBUG"),
        ({"SANDBOX_ENABLED": "1"}, "payments.E102", "Unset SANDBOX_ENABLED"),
        ({"DEMO_SHOP_ENABLED": "1"}, "payments.E103", "Unset DEMO_SHOP_ENABLED"),
        ({"DATABASE_URL": ""}, "payments.E104", "Set DATABASE_URL to PostgreSQL"),
        ({"CELERY_BROKER_URL": ""}, "payments.E105", "Set CELERY_BROKER_URL"),
        ({"CACHE_URL": "locmemcache://"}, "payments.E106", "Set CACHE_URL to a shared cache"),
        ({"CACHE_URL": ""}, "payments.E106", "Set CACHE_URL to a shared cache"),
        ({"PUBLIC_BASE_URL": "http://pay.shop.example"}, "payments.E107", "https://"),
        ({"PUBLIC_BASE_URL": "https://127.0.0.1:8443"}, "payments.E108", "Set PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "https://localhost"}, "payments.E108", "Set PUBLIC_BASE_URL"),
        (
            {"GATEWAY_API_URL": "https://pay.shop.example/sandbox/api/"},
            "payments.E109",
            "Set GATEWAY_API_URL",
        ),
        ({"GATEWAY_API_URL": ""}, "payments.E109", "Set GATEWAY_API_URL"),
        (  # the default then is the sandbox's own process (make run's layout)
            {"GATEWAY_API_URL": "", "SANDBOX_URL": "http://sandbox.internal:8001"},
            "payments.E109",
            "Set GATEWAY_API_URL",
        ),
        ({"GATEWAY_PAYMENT_HOST": ""}, "payments.E109", "Set GATEWAY_PAYMENT_HOST"),
        ({"DJANGO_SECRET_KEY": "django-insecure-" + SECRET_KEY}, "payments.E110", "SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "short"}, "payments.E110", "at least 50 random"),
        ({"DJANGO_SECRET_KEY": ""}, "payments.E001", "DJANGO_SECRET_KEY"),
        ({"GATEWAY_API_SECRET": ""}, "payments.E003", "GATEWAY_API_SECRET"),
        (
            {"DJANGO_PROXY_SSL_HEADER": "X-Forwarded-Proto"},
            "payments.E111",
            "ADMIN_LOGIN_LOCKOUT_BY=username",
        ),
    ],
)
def test_a_bad_setting_stops_make_serve_before_it_migrates(
    tmp_path: Path, values: dict[str, str], check_id: str, hint: str
) -> None:
    env = production_env(tmp_path, **values)
    result = subprocess.run(
        ["make", "--no-print-directory", "serve"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert check_id in output and hint in output, output
    assert "Operations to perform" not in output  # it never reached migrate
    assert not (tmp_path / "db.sqlite3").exists()


def test_a_complete_production_environment_passes_the_deploy_checks(tmp_path: Path) -> None:
    result = check_deploy(production_env(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "payments.E" not in result.stdout + result.stderr


def test_behind_a_proxy_logins_may_be_locked_out_by_username(tmp_path: Path) -> None:
    env = production_env(
        tmp_path, DJANGO_PROXY_SSL_HEADER="X-Forwarded-Proto", ADMIN_LOGIN_LOCKOUT_BY="username"
    )
    result = check_deploy(env)

    assert result.returncode == 0, result.stderr


def test_one_machine_may_keep_sqlite_and_the_filesystem_broker_when_it_says_so(
    tmp_path: Path,
) -> None:
    env = production_env(
        tmp_path, DATABASE_URL="", CELERY_BROKER_URL="", CACHE_URL="", DEPLOY_SINGLE_MACHINE="1"
    )
    result = check_deploy(env)

    assert result.returncode == 0, result.stderr


def test_a_development_var_dev_env_is_not_read_in_production(tmp_path: Path) -> None:
    """A leftover development secret key in var/dev.env does not pass for production's."""
    (tmp_path / "dev.env").write_text(f"DJANGO_SECRET_KEY={SECRET_KEY}\n")
    result = check_deploy(production_env(tmp_path, DJANGO_SECRET_KEY=""))

    assert result.returncode != 0
    assert "payments.E001" in result.stderr


def test_secrets_may_come_from_files(tmp_path: Path) -> None:
    """`NAME_FILE=/path`: the file's content is the value (secrets mounted by a manager)."""
    (tmp_path / "key").write_text(SECRET_KEY)
    (tmp_path / "gateway").write_text(GOOD["GATEWAY_API_SECRET"])
    env = production_env(
        tmp_path,
        DJANGO_SECRET_KEY="",
        DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"),
        GATEWAY_API_SECRET="",
        GATEWAY_API_SECRET_FILE=str(tmp_path / "gateway"),
    )
    result = check_deploy(env)

    assert result.returncode == 0, result.stderr
