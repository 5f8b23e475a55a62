"""`python manage.py bootstrap`: what `make run` needs before it starts the processes.

Idempotent: running it again reuses what exists and prints no secret twice.
- development only: writes var/dev.env with a lasting DJANGO_SECRET_KEY and
  sandbox gateway credentials, unless the environment already gives them;
- applies the migrations;
- (the sandbox gateway makes the merchant account for the service's credentials
  after migrating: sandbox.accounts.configured_account_on_migrate);
- an admin user (DJANGO_SUPERUSER_USERNAME / _PASSWORD / _EMAIL, or
  admin with a generated password) and its API token (SHOP_API_TOKEN, or
  generated), printed once when created.
"""

from __future__ import annotations

import os
import secrets
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.core.management.utils import get_random_secret_key
from rest_framework.authtoken.models import Token

from payments.gateway.signing import new_secret


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def ensure_dev_env(path: Path) -> dict[str, str]:
    """Generate, once, the development secrets the environment does not give."""
    existing = _read_env_file(path)
    generators = {
        # Marked as made for development: the deploy checks refuse it in production.
        "DJANGO_SECRET_KEY": lambda: settings.DEV_KEY_PREFIX + get_random_secret_key(),
        "GATEWAY_API_KEY": lambda: str(uuid.uuid4()),
        "GATEWAY_API_SECRET": new_secret,
    }
    for name, generate in generators.items():
        if name not in os.environ and name not in existing:
            existing[name] = generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}={value}\n" for name, value in existing.items()))
    path.chmod(0o600)
    return {**existing, **{k: os.environ[k] for k in generators if k in os.environ}}


class Command(BaseCommand):
    help = "Prepare what `make run` needs: dev secrets, migrations, the admin user and its token."
    # The checks would warn about the very credentials this command is about to write.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        values: dict[str, str] = {}
        if settings.DEBUG:
            values = ensure_dev_env(Path(settings.VAR_DIR) / "dev.env")
            self.stdout.write(f"Development settings in {settings.VAR_DIR / 'dev.env'}")
            # On the first start they were generated after the settings were read: the
            # settings take them now, as the next start reads them from dev.env (the
            # sandbox's post_migrate makes the account for them).
            for name in ("GATEWAY_API_KEY", "GATEWAY_API_SECRET"):
                if not getattr(settings, name) and values.get(name):
                    setattr(settings, name, values[name])
        # Verbosity 1 for what apps print after migrating (the sandbox account), not the
        # migrations' own lines.
        call_command(
            "migrate", interactive=False, verbosity=options["verbosity"], stdout=StringIO()
        )
        self.stdout.write("Database migrated.")
        self._ensure_admin()

    def _ensure_admin(self) -> None:
        user_model = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        user = user_model.objects.filter(username=username).first()
        if user is None:
            password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or secrets.token_urlsafe(12)
            user = user_model.objects.create_superuser(
                username=username,
                email=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""),
                password=password,
            )
            shown = (
                "(from DJANGO_SUPERUSER_PASSWORD)"
                if "DJANGO_SUPERUSER_PASSWORD" in os.environ
                else password
            )
            self.stdout.write(self.style.SUCCESS(f"Admin user created: {username} / {shown}"))
            self.stdout.write("  (the password is shown only this once)")
        else:
            self.stdout.write(f"Admin user exists: {username}")
        given_token = os.environ.get("SHOP_API_TOKEN")
        token, created = Token.objects.get_or_create(
            user=user, defaults={"key": given_token} if given_token else {}
        )
        if created and not given_token:
            self.stdout.write(self.style.SUCCESS(f"API token: {token.key}"))
            self.stdout.write(
                "  (shown only this once; `manage.py drf_create_token -r <user>` makes a new one)"
            )
        else:
            self.stdout.write(
                "API token exists" + (" (from SHOP_API_TOKEN)" if given_token else "")
            )
