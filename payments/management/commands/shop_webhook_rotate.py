"""`python manage.py shop_webhook_rotate ENDPOINT_ID [--hours H]`.

Makes a new secret for the endpoint and prints it once. The former secret
keeps signing too until the rotation window ends (SHOP_WEBHOOK_ROTATION_HOURS,
default 24, or `--hours`): every delivery meanwhile carries both signatures,
so the shop may switch to the new secret at its own pace.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.management.webhooks import endpoint_numbered
from payments.services.webhook_endpoints import webhook_endpoint_rotate


class Command(BaseCommand):
    help = "Rotate a webhook endpoint's secret; prints the new one once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("endpoint", metavar="ENDPOINT_ID")
        parser.add_argument(
            "--hours",
            type=float,
            default=None,
            help="How long the former secret keeps signing (default SHOP_WEBHOOK_ROTATION_HOURS).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        endpoint = endpoint_numbered(options["endpoint"])
        try:
            secret, expires = webhook_endpoint_rotate(endpoint=endpoint, hours=options["hours"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"endpoint {endpoint.pk}: {endpoint.url}")
        self.stdout.write(f"new secret (shown this once): {secret}")
        self.stdout.write(f"the former secret signs too until {expires:%Y-%m-%d %H:%M:%S} UTC")
