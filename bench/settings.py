"""Settings of the benchmark servers: the project's own, plus two baseline views.

Everything else comes from the environment that bench.servers builds
(DJANGO_DEBUG=0, PostgreSQL, fresh credentials), exactly as in production.
"""

from merchant.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# Production mode serves collected static files through a manifest; the benchmarks
# measure views, not assets, and run no collectstatic.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
