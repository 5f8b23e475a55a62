"""The Celery app: configured from Django settings (CELERY_ namespace)."""

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_init

from merchant.heartbeat import HeartbeatStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "merchant.settings")

app = Celery("merchant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker records a heartbeat that /readyz reads (merchant.heartbeat).
app.steps["consumer"].add(HeartbeatStep)


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


@setup_logging.connect
def _use_the_service_logging(**_: object) -> None:
    """Worker and beat log as the web does (settings.LOGGING), not in Celery's own format.

    With a receiver here Celery neither hijacks the root logger (which would log every
    line twice, once per handler) nor redirects stdout and stderr into a logger.
    """
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
