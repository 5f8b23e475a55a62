"""URLs of the sandbox gateway's own process (`make run`'s `sandbox` line): the sandbox only.

The same paths as when the service's server mounts it (merchant/urls.py), so
GATEWAY_API_URL and GATEWAY_PAYMENT_HOST differ only in their origin (SANDBOX_URL).
"""

from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView

urlpatterns: list[URLPattern | URLResolver] = [
    path("sandbox/", include("sandbox.urls")),
    path("", RedirectView.as_view(url="/sandbox/")),
]
