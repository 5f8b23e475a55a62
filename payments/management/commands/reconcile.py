"""`python manage.py reconcile [--dry-run] [--sweep NAME ...]`: run the sweeps now.

The same sweeps Celery beat runs: apply stored notifications that were
never applied, expire unpaid orders past their deadline, flag orders stuck
confirming, and compare with the gateway's ledger. Shows a progress bar per
sweep and a summary table; every run is recorded for the admin.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from payments.choices import Sweep
from payments.gateway.errors import GatewayError
from payments.services.runs import SWEEPS, reconciliation_run

ORDER = Sweep.values


class Command(BaseCommand):
    help = "Run the reconciliation sweeps now and print what they found."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Look and count; change nothing."
        )
        parser.add_argument(
            "--sweep",
            action="append",
            choices=ORDER,
            help="Run only this sweep (repeatable). Default: all, in order.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = options["sweep"] or list(ORDER)
        dry_run = options["dry_run"]
        results: list[tuple[str, dict[str, int], str]] = []
        for name in chosen:
            assert name in SWEEPS
            with tqdm(
                desc=f"{name:<14}",
                unit=" rows",
                file=self.stderr,
                disable=options["verbosity"] == 0,
            ) as bar:
                try:
                    run = reconciliation_run(sweep=name, dry_run=dry_run, progress=bar.update)
                except GatewayError as exc:
                    results.append((name, {}, f"failed: gateway: {exc}"))
                    continue
            results.append((name, run.counts, "dry run" if dry_run else "done"))
        self._summary(results)
        if any(status.startswith("failed") for _, _, status in results):
            raise CommandError("some sweeps failed; see the summary above")

    def _summary(self, results: list[tuple[str, dict[str, int], str]]) -> None:
        self.stdout.write("")
        self.stdout.write(f"{'sweep':<14} {'status':<10} counts")
        self.stdout.write(f"{'-' * 14} {'-' * 10} {'-' * 40}")
        for name, counts, status in results:
            shown = ", ".join(f"{key}={value}" for key, value in sorted(counts.items())) or "-"
            self.stdout.write(f"{name:<14} {status:<10} {shown}")
