"""Settings of the cluster test's service processes: the tests' settings with quick safety nets.

The beat entries that catch up on work lost with a killed worker (a delivery reserved but
never run, a retry held as a countdown) run every few seconds instead of every few minutes,
so that a run with a SIGKILL settles within the test's time. Everything else is as the
environment says (tests/cluster/conftest.py sets the short timeouts there).
"""

from tests.settings import *  # noqa: F403

SAFETY_NET_SECONDS = 2.0
# Shop events overdue by this much are enqueued again (the product's sweep waits a minute).
SHOP_EVENT_SWEEP_GRACE_SECONDS = 3.0

if "sandbox-redeliver-due-ipns" in CELERY_BEAT_SCHEDULE:  # noqa: F405
    CELERY_BEAT_SCHEDULE["sandbox-redeliver-due-ipns"]["schedule"] = SAFETY_NET_SECONDS  # noqa: F405
CELERY_BEAT_SCHEDULE["payments-redeliver-shop-events"] = {  # noqa: F405
    "task": "payments.tasks.redeliver_shop_events",
    "schedule": SAFETY_NET_SECONDS,
    "args": (SHOP_EVENT_SWEEP_GRACE_SECONDS,),
}
