"""Celery tasks of the sandbox gateway: thin; they take ids and call services.

Suggested beat entry (settings.CELERY_BEAT_SCHEDULE, when SANDBOX_ENABLED):
    "sandbox-redeliver-due-ipns": {
        "task": "sandbox.tasks.redeliver_due_ipns",
        "schedule": 300.0,
    }
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from sandbox import services


@shared_task(bind=True, max_retries=None, ignore_result=True)
def deliver_ipn(self: Any, delivery_id: int) -> str:
    """POST one IPN; on failure, again after SANDBOX_IPN_RETRY_SECONDS until "[OK]".

    The delivery row keeps next_attempt_at too, so a retry lost with a broker
    or a worker is found again by redeliver_due_ipns. An acknowledged delivery
    is never re-sent, and a task that finds its delivery not due does nothing.
    """
    outcome = services.ipn_delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.result


@shared_task(ignore_result=True)
def redeliver_due_ipns() -> int:
    """Sweep: enqueue deliveries whose next attempt is well overdue."""
    return len(services.ipn_redeliver_due())
