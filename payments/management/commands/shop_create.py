"""`python manage.py shop_create NAME --gateway-key K --gateway-secret-file F` (or
`--gateway-secret-env VAR`), with `--return-host H` (repeatable), `--order-ttl`, and
`--underpaid-tolerance`.

Makes a shop with its own gateway account and prints its id and a first API
token (shown this once). The secret is read from a file (sealed into the
database with the service's secret key) or named by an environment variable
that every process of the service has; never given on the command line, where
`ps` and shell histories would show it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction

from payments.management.shops import (
    fraction,
    gateway_key,
    positive_int,
    secret_env_warning,
    secret_from_file,
    write_new_key,
)
from payments.models import Shop
from payments.services.shops import api_token_create, shop_create


class Command(BaseCommand):
    help = "Make a shop with its own gateway account; print its id and a first API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The shop's name (unique).")
        parser.add_argument(
            "--gateway-key", required=True, type=gateway_key, help="Its gateway API key id."
        )
        secret = parser.add_mutually_exclusive_group(required=True)
        secret.add_argument(
            "--gateway-secret-file", metavar="FILE", help="A file holding its gateway secret."
        )
        secret.add_argument(
            "--gateway-secret-env",
            metavar="VAR",
            help="The environment variable holding its gateway secret (in every process).",
        )
        parser.add_argument(
            "--return-host",
            action="append",
            default=[],
            metavar="HOST",
            help="A host or origin the payer may be sent back to (repeatable).",
        )
        parser.add_argument(
            "--order-ttl", type=positive_int, metavar="SECONDS", help="Orders' deadline."
        )
        parser.add_argument(
            "--underpaid-tolerance", type=fraction, metavar="FRACTION", help="e.g. 0.01"
        )
        parser.add_argument("--token-name", default="first token", help="The API token's name.")

    def handle(self, *args: Any, **options: Any) -> None:
        secret_env = options["gateway_secret_env"] or ""
        secret = None
        if options["gateway_secret_file"]:
            secret = secret_from_file(options["gateway_secret_file"])
        elif warning := secret_env_warning(secret_env):
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        try:
            with transaction.atomic():
                shop = shop_create(
                    name=options["name"],
                    gateway_key=options["gateway_key"],
                    gateway_secret=secret,
                    gateway_secret_env=secret_env,
                    return_hosts=options["return_host"],
                    order_ttl_seconds=options["order_ttl"],
                    underpaid_tolerance=options["underpaid_tolerance"],
                )
                _, key = api_token_create(shop=shop, name=options["token_name"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except IntegrityError as exc:  # made meanwhile by another run
            raise CommandError("a shop with this name or gateway key exists already") from exc
        self._report(shop, key)

    def _report(self, shop: Shop, key: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"Shop created: {shop.name}"))
        self.stdout.write(f"Shop id: {shop.pk}")
        write_new_key(self.stdout, key, shop=shop)
