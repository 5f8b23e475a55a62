"""Project URLs: admin, health, the payments app and (when enabled) the sandbox gateway."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from merchant import health, metrics
from payments import ipn

urlpatterns = [
    path("admin/", admin.site.urls),
    path("livez", health.livez, name="livez"),
    path("readyz", health.readyz, name="readyz"),
    path("healthz", health.readyz, name="healthz"),  # the old name of /readyz
    path("api/", include("payments.api.urls")),
    path("checkout/", include("payments.urls")),
    path("payments/ipn/", ipn.receive, name="payments-ipn"),
    path("metrics", metrics.metrics, name="metrics"),
]

if settings.DEMO_SHOP_ENABLED:
    urlpatterns.append(path("", include("demo_shop.urls")))

# Served here only when it is not a process of its own (SANDBOX_URL, sandbox.site_urls).
if settings.SANDBOX_ENABLED and not settings.SANDBOX_URL:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
