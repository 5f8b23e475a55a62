"""`python manage.py bootstrap`: what `make run` needs before it starts the processes.

Idempotent: running it again reuses what exists and prints no secret twice.
- development only: writes var/dev.env with a lasting DJANGO_SECRET_KEY and
  sandbox gateway credentials, unless the environment already gives them;
- applies the migrations;
- (the sandbox gateway makes the merchant account for the service's credentials
  after migrating: sandbox.accounts.configured_account_on_migrate);
- an admin user (DJANGO_SUPERUSER_USERNAME / _PASSWORD / _EMAIL, or
  admin with a generated password), printed once when created;
- the default shop's first API token (SHOP_API_TOKEN, stored hashed as any
  token, or generated and printed once), unless the shop has a live one.
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
from django.core.management.base import BaseCommand, CommandError
from django.core.management.utils import get_random_secret_key

from payments.conf import payments_settings
from payments.gateway.signing import new_secret
from payments.models import Shop
from payments.services.shops import api_token_create
from payments.shops import api_token_for_key, api_token_refusal, shop_default


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
        "DJANGO_SECRET_KEY": lambda: payments_settings.DEV_KEY_PREFIX + get_random_secret_key(),
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
    help = (
        "Prepare what `make run` needs: dev secrets, migrations, the admin user and the "
        "default shop's first API token."
    )
    # The checks would warn about the very credentials this command is about to write.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        values: dict[str, str] = {}
        if settings.DEBUG:
            values = ensure_dev_env(Path(payments_settings.VAR_DIR) / "dev.env")
            self.stdout.write(f"Development settings in {payments_settings.VAR_DIR / 'dev.env'}")
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
        self._ensure_api_token()

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

    def _ensure_api_token(self) -> None:
        """The default shop's first API token: made once, never shown again."""
        shop = shop_default()
        given = os.environ.get("SHOP_API_TOKEN")
        if given:
            self._given_token(shop, given)
        elif shop.api_tokens.filter(revoked_at__isnull=True).exists():
            self.stdout.write("API token exists")
        else:
            _, key = api_token_create(shop=shop, name="make run")
            self.stdout.write(self.style.SUCCESS(f"API token: {key}"))
            self.stdout.write(
                "  (shown only this once; `manage.py shop_token default` makes a new one)"
            )

    def _given_token(self, shop: Shop, given: str) -> None:
        """SHOP_API_TOKEN: stored (hashed) the first time, as the default shop's token."""
        if api_token_for_key(key=given) is None:
            refusal = api_token_refusal(key=given)
            if refusal != "invalid_token":  # it is a token, but refused: say so, keep going
                self.stderr.write(
                    self.style.WARNING(f"SHOP_API_TOKEN is refused by the API ({refusal})")
                )
                return
            try:
                api_token_create(shop=shop, name="SHOP_API_TOKEN", key=given)
            except ValueError as exc:
                raise CommandError(f"SHOP_API_TOKEN: {exc}") from exc
        self.stdout.write("API token exists (from SHOP_API_TOKEN)")
