"""`python manage.py sandbox_account_create --login L [--secret-file F]`: a merchant account
at the sandbox gateway for a new shop, in development.

Prints the account's API key id and secret, as the gateway hands them out,
and the `shop_create` command that registers a shop with them. With
--secret-file the secret is written to that new file (mode 0600) instead of
the terminal, ready for `shop_create --gateway-secret-file`. Each account
signs its own orders' notifications, so every shop's IPNs are verified with
its own secret.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.accounts import account_create
from sandbox.models import SandboxAccount


def _new_secret_file(path: Path) -> int:
    """A new file readable by its owner only, opened before the account is made (so the
    secret always has somewhere to go); an existing file is never overwritten."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise CommandError(f"{path} exists already: name a new file") from exc
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from exc


def _account_with_secret_in(path: Path, login: str) -> SandboxAccount:
    descriptor = _new_secret_file(path)
    try:
        account = account_create(login=login)
    except BaseException:
        os.close(descriptor)
        path.unlink(missing_ok=True)  # no account: no file
        raise
    with os.fdopen(descriptor, "w") as out:
        out.write(account.secret + "\n")
    return account


class Command(BaseCommand):
    help = (
        "Open a merchant account at the sandbox gateway (development): prints its API key "
        "id and secret, and the shop_create command that registers a shop with them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--login", required=True, help="The account's login at the gateway (any name)."
        )
        parser.add_argument(
            "--secret-file",
            type=Path,
            help="Write the secret to this new file (mode 0600) instead of printing it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX_ENABLED:
            raise CommandError(
                "the sandbox is off (production): set DJANGO_DEBUG=1 or SANDBOX_ENABLED=1"
            )
        login = options["login"].strip()
        if not login:
            raise CommandError("--login must not be empty")
        secret_file: Path | None = options["secret_file"]
        if secret_file is None:
            account = account_create(login=login)
        else:
            account = _account_with_secret_in(secret_file, login)
        self.stdout.write(f"Sandbox merchant account {login!r} created.")
        self.stdout.write(f"API key id: {account.api_key}")
        if secret_file is None:
            self.stdout.write(f"API secret: {account.secret}")
            shown_file = "<a file holding the secret>"
        else:
            self.stdout.write(f"API secret: written to {secret_file}")
            shown_file = shlex.quote(str(secret_file))
        self.stdout.write(
            "Register a shop with it:\n"
            f"  manage.py shop_create {shlex.quote(login)} --gateway-key {account.api_key} "
            f"--gateway-secret-file {shown_file}"
        )
