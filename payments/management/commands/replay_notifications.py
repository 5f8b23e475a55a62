"""`python manage.py replay_notifications [--failed | --ids ID ...] [--dry-run]`.

Applies stored notifications again. Applying is idempotent: a notification
already applied changes nothing the second time, it only records its new
outcome. `--failed` takes those never applied or whose applying failed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.models import Notification
from payments.services.sweeps import notifications_apply_pending


class Command(BaseCommand):
    help = "Apply stored gateway notifications again (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--failed", action="store_true", help="Notifications not applied or that failed."
        )
        which.add_argument("--ids", nargs="+", type=int, metavar="ID", help="Notification ids.")
        parser.add_argument("--dry-run", action="store_true", help="Count only.")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = options["ids"]
        if ids:
            missing = set(ids) - set(
                Notification.objects.filter(pk__in=ids).values_list("pk", flat=True)
            )
            if missing:
                raise CommandError(
                    f"no notification with id {', '.join(map(str, sorted(missing)))}"
                )
        counts = notifications_apply_pending(
            ids=ids, older_than_seconds=0, dry_run=options["dry_run"]
        )
        self.stdout.write(f"examined {counts.pop('examined', 0)} notification(s)")
        for key, value in sorted(counts.items()):
            self.stdout.write(f"  {key.removeprefix('outcome:')}: {value}")
