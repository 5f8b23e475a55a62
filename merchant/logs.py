"""One log format for every process of the service: web (gunicorn + Django), Celery worker, beat.

`LOG_FORMAT=plain` (the default) is the human format of old with the request
id added; `LOG_FORMAT=json` writes one JSON object per line (python-json-logger):
`time`, `level`, `logger`, `message`, `request_id`, and whatever a call passed
as `extra=` (`order_id`, `transaction`, ...).

The request id lives in django-guid's context variable: its middleware sets it
for a request (from a sane incoming X-Request-ID, else a new one), its Celery
integration carries it in the headers of the tasks the request enqueues and
sets it while the task runs. `RequestIdFilter` puts it on every record.

This module imports no Django settings: gunicorn's master process loads
`GunicornLogger` before (and without) the Django application.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
from typing import Any

from django_guid.context import guid
from gunicorn import glogging

FORMATS = ("plain", "json")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s %(request_id)s"
JSON_RENAMES = {"levelname": "level", "name": "logger"}
REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the request's or the task's; None outside both) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = guid.get()
        return True


class PlainFormatter(logging.Formatter):
    """The plain line; `-` for a line outside any request or task."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        values = {**record.__dict__, "request_id": getattr(record, "request_id", None) or "-"}
        return PLAIN_FORMAT % values


def make_formatter(log_format: str = "plain") -> logging.Formatter:
    if log_format == "json":
        from pythonjsonlogger.core import RESERVED_ATTRS
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            JSON_FIELDS,
            rename_fields=JSON_RENAMES,
            timestamp="time",
            # django.request's `request` object: its repr has the query string, which may
            # carry a token; the message names the path already.
            reserved_attrs=[*RESERVED_ATTRS, "request"],
        )
    return PlainFormatter()


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """The `LOGGING` dict of the settings (and of gunicorn's master: GunicornLogger)."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    # Loggers that Django's defaults give handlers of their own would print each line twice
    # (theirs and the root's): they keep no handler and propagate to the root.
    to_root = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "merchant.logs.RequestIdFilter"}},
        "formatters": {"main": {"()": "merchant.logs.make_formatter", "log_format": log_format}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {**to_root, "level": "INFO"},
            "django.server": {**to_root, "level": "INFO"},
            "django.db.backends": {"level": "INFO"},
            # It logs every request's id at INFO; a replaced X-Request-ID is a WARNING.
            "django_guid": {"level": "WARNING"},
        },
    }


def log_unraisable(unraisable: Any) -> None:
    """sys.unraisablehook: an exception Python cannot raise (a __del__, a weakref callback)
    is a log record in the service's format, not a bare stderr text.

    The quit signal's SystemExit, landing while such a callback runs, is the
    worker's own orderly exit: not an error, left out.
    """
    if isinstance(unraisable.exc_value, SystemExit | KeyboardInterrupt):
        return
    logging.getLogger("merchant.unraisable").error(
        "%s: %r",
        unraisable.err_msg or "Exception ignored in",
        unraisable.object,
        exc_info=(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback),
    )


class GunicornLogger(glogging.Logger):
    """gunicorn's error and access logs in the service's format (`--logger-class`).

    gunicorn keeps its own handlers and destinations (`--error-logfile`,
    `--access-logfile`); they only get the service's formatter and request id
    filter. An access line carries the id the response was given (X-Request-ID).
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        log_format = os.environ.get("LOG_FORMAT", "plain")
        # The master process has no Django: configure the root logger the same way.
        logging.config.dictConfig(logging_config(log_format, os.environ.get("LOG_LEVEL", "INFO")))
        sys.unraisablehook = log_unraisable  # inherited by the workers it forks
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(make_formatter(log_format))
                handler.addFilter(RequestIdFilter())

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        request_id = next(
            (value for name, value in resp.headers if name.lower() == REQUEST_ID_HEADER.lower()),
            None,
        )
        token = guid.set(request_id)
        try:
            super().access(resp, req, environ, request_time)
        finally:
            guid.reset(token)
