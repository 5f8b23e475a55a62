"""Celery queues by purpose, and which task goes to which (settings.CELERY_TASK_ROUTES).

A slow shop, a long ledger sweep or a backlog of sandbox IPNs then holds up only
its own queue: workers can be given queues of their own (docs/deploy.md "Queues
and workers"). A worker started without `-Q` consumes every queue listed here
(settings.CELERY_TASK_QUEUES), as `make run`'s single worker and the tests' do.
"""

from __future__ import annotations

from typing import Any

from payments.choices import Sweep

DEFAULT = "celery"  # Celery's own default name: an upgrade leaves nothing in a forgotten queue
NOTIFICATIONS = "notifications"  # applying stored IPNs (their worker's wakes, apply_pending)
EVENTS = "events"  # shop event deliveries
SWEEPS = "sweeps"  # reconciliation sweeps and the redelivery sweep of shop events
SANDBOX = "sandbox"  # the sandbox gateway's IPN deliveries and their sweep
ALL = (DEFAULT, NOTIFICATIONS, EVENTS, SWEEPS, SANDBOX)

_ROUTES = {
    "payments.tasks.apply_notifications": NOTIFICATIONS,
    "payments.tasks.deliver_shop_event": EVENTS,
    "payments.tasks.redeliver_shop_events": SWEEPS,
    "payments.tasks.run_sweep": SWEEPS,
    "sandbox.tasks.deliver_ipn": SANDBOX,
    "sandbox.tasks.redeliver_due_ipns": SANDBOX,
}


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """Celery router: the queue of a task by its name (and the sweep's); None: the default."""
    if name == "payments.tasks.run_sweep":
        sweep = (list(args or ()) or [(kwargs or {}).get("sweep")])[0]
        return {"queue": NOTIFICATIONS if sweep == Sweep.APPLY_PENDING else SWEEPS}
    queue = _ROUTES.get(name)
    return {"queue": queue} if queue else None


def broker_may_hold(seconds: float) -> bool:
    """Whether a retry `seconds` away may wait in the broker as a countdown.

    Longer ones are kept in the database and enqueued by a sweep when due
    (settings.CELERY_MAX_COUNTDOWN_SECONDS says why).
    """
    from payments.conf import payments_settings

    return seconds <= float(payments_settings.CELERY_MAX_COUNTDOWN_SECONDS)
