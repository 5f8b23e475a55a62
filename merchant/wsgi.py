"""WSGI entry point (gunicorn merchant.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "merchant.settings")

application = get_wsgi_application()

from merchant.startup import refuse_to_start_on_errors  # noqa: E402  (needs the app loaded)

refuse_to_start_on_errors()

import gc  # noqa: E402

# Everything loaded so far (Django, the URL conf, the models) lives as long as the
# process: keep it out of the garbage collector's full scans, which otherwise
# pause a request for tens of milliseconds now and then.
gc.freeze()
