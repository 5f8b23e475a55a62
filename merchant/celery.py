"""The Celery app: configured from Django settings (CELERY_ namespace)."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "merchant.settings")

app = Celery("merchant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _refuse_to_start_when_misconfigured(**_: object) -> None:
    from merchant.startup import refuse_to_start_on_errors

    refuse_to_start_on_errors()
