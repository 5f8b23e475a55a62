"""Celery tasks of the sandbox gateway: thin; they take ids and call services.

`redeliver_due_ipns` runs from beat every 300 s when SANDBOX_ENABLED
(merchant/settings.py adds the entry).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from merchant.delivery import retry_if_soon
from sandbox import services

_ATTEMPT_SOFT_LIMIT, _ATTEMPT_HARD_LIMIT = services.attempt_time_limits()


@shared_task(
    bind=True,
    max_retries=None,
    ignore_result=True,
    soft_time_limit=_ATTEMPT_SOFT_LIMIT,
    time_limit=_ATTEMPT_HARD_LIMIT,
)
def deliver_ipn(self: Any, delivery_id: int) -> str:
    """POST one IPN; on failure, again after SANDBOX_IPN_RETRY_SECONDS until "[OK]".

    The delivery row keeps next_attempt_at too, so a retry lost with a broker
    or a worker, or an attempt killed at its time limit, is found again by
    redeliver_due_ipns. A retry later than CELERY_MAX_COUNTDOWN_SECONDS (the
    gateway's 30 minutes) is left to that sweep alone, never held by the
    broker. An acknowledged delivery is never re-sent, and a task that finds
    its delivery not due does nothing.
    """
    outcome = services.ipn_delivery_attempt(delivery_id=delivery_id)
    retry_if_soon(self, outcome.retry_in)
    return outcome.result


# At most 500 publishes.
@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def redeliver_due_ipns() -> int:
    """Sweep: enqueue deliveries whose next attempt is well overdue."""
    return len(services.ipn_redeliver_due())
