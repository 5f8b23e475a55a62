"""URLs of the sandbox gateway, mounted at /sandbox/."""

from django.urls import URLPattern, URLResolver

app_name = "sandbox"

urlpatterns: list[URLPattern | URLResolver] = []
