"""`python manage.py shop_events_replay --shop NAME --since T --until T [--endpoint ID]`:
send a shop's failed deliveries again.

Every delivery given up, or failing, of the shop's events created in
[since, until) (at most 31 days), to --endpoint only when given, is made due
now with a new retry window and enqueued, with a progress bar; those of a
disabled endpoint wait until it is enabled. `--dry-run` only counts them.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from payments.management.events import enqueued_note, moment, shop_endpoint_numbered, time_range
from payments.management.shops import shop_named
from payments.services.shop_event_redelivery import shop_event_deliveries_replay
from payments.shop_event_selectors import shop_deliveries_failed


class Command(BaseCommand):
    help = "Send a shop's failed event deliveries of a time range again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shop", required=True, help="The shop's name.")
        parser.add_argument("--since", type=moment, required=True, help="ISO 8601; UTC.")
        parser.add_argument("--until", type=moment, required=True, help="ISO 8601; UTC.")
        parser.add_argument("--endpoint", metavar="ID", help="Only to this webhook endpoint.")
        parser.add_argument("--dry-run", action="store_true", help="Count them; send nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        shop = shop_named(options["shop"])
        time_range(options["since"], options["until"], bounded=True)
        endpoint = shop_endpoint_numbered(options["endpoint"], shop=shop)
        failed = shop_deliveries_failed(
            shop=shop, since=options["since"], until=options["until"], endpoint=endpoint
        )
        ids = list(failed.values_list("pk", flat=True))
        if options["dry_run"] or not ids:
            self.stdout.write(f"shop {shop.name!r}: {len(ids)} failed deliveries; nothing sent")
            return
        with tqdm(
            total=len(ids),
            desc="replay",
            unit=" deliveries",
            file=self.stderr,
            disable=options["verbosity"] == 0,
        ) as bar:
            done = shop_event_deliveries_replay(delivery_ids=ids, progress=bar.update)
        self.stdout.write(
            f"shop {shop.name!r}: {len(done.deliveries)} failed deliveries made due, "
            f"{enqueued_note(done)}"
        )
