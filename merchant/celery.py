"""The Celery app: configured from Django settings (CELERY_ namespace)."""

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "merchant.settings")

app = Celery("merchant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def ensure_broker_folders(transport_options: dict[str, Any]) -> None:
    """kombu's filesystem transport expects its folders to exist: make them."""
    for option in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        if option in transport_options:
            Path(transport_options[option]).mkdir(parents=True, exist_ok=True)


@app.on_after_configure.connect
def _prepare_filesystem_broker(sender: Celery, **_: object) -> None:
    if str(sender.conf.broker_url).startswith("filesystem://"):
        ensure_broker_folders(sender.conf.broker_transport_options)


@worker_init.connect
def _refuse_to_start_when_misconfigured(**_: object) -> None:
    from merchant.startup import refuse_to_start_on_errors

    refuse_to_start_on_errors()
