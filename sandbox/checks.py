"""System checks of the sandbox: its rates must be usable."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from payments import money


@checks.register()
def check_rates(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from sandbox.currencies import rate_int

    found: list[checks.CheckMessage] = []
    rates: dict[str, Any] = settings.SANDBOX_RATES
    for code in rates:
        if str(code).upper() not in money.FIAT_CURRENCIES:
            found.append(
                checks.Warning(
                    f"SANDBOX_RATES names {code!r}, which is not a fiat currency of the gateway.",
                    id="sandbox.W001",
                )
            )
            continue
        try:
            rate_int(str(code).upper())
        except ImproperlyConfigured as exc:
            found.append(
                checks.Error(
                    str(exc),
                    hint='Rates are plain decimal strings, e.g. SANDBOX_RATES="USD=12.50000".',
                    id="sandbox.E001",
                )
            )
    return found
