"""Project URLs: admin, health, the payments app and (when enabled) the sandbox gateway."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from merchant.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
