"""How many generated cases each hostile-input test ran; printed at the end of the run."""

from __future__ import annotations

from collections import Counter

FUZZ_COUNTS: Counter[str] = Counter()


def count(name: str) -> None:
    FUZZ_COUNTS[name] += 1
