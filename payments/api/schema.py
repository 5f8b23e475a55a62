"""The orders API's schema and docs pages, the same in the service and in a host project.

Both views apply the app's own settings (`payments.api.schema_settings`), not the
project's SPECTACULAR_SETTINGS and REST_FRAMEWORK, and the schema covers the app's
API only (its URLconf), at the prefix it is mounted under: a shop's own DRF views
and settings neither enter it nor change it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.settings import patched_settings
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from payments.api.errors import api_path_prefix
from payments.api.openapi import operation
from payments.api.schema_settings import SCHEMA_SETTINGS, SWAGGER_SETTINGS

API_URLCONF = "payments.api.urls"


@contextmanager
def _spectacular_default_schema() -> Iterator[None]:
    """drf-spectacular draws `webhooks` with REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS
    (plumbing.process_webhooks), which in a host project may be DRF's own: drf-spectacular's
    while the schema is drawn (as drf-spectacular patches its own settings then)."""
    previous: Any = api_settings.DEFAULT_SCHEMA_CLASS  # the class (typed as its setting)
    if issubclass(previous, AutoSchema):
        yield
        return
    setattr(api_settings, "DEFAULT_SCHEMA_CLASS", AutoSchema)  # noqa: B010
    try:
        yield
    finally:
        setattr(api_settings, "DEFAULT_SCHEMA_CLASS", previous)  # noqa: B010


class ApiSchemaGenerator(SchemaGenerator):
    def get_schema(self, request: Any = None, public: bool = False) -> Any:
        with _spectacular_default_schema():
            return super().get_schema(request=request, public=public)


class ApiSchemaView(SpectacularAPIView):
    # Public, as the service's: the schema is the API's documentation, no secret.
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    schema = AutoSchema()
    urlconf = API_URLCONF
    generator_class = ApiSchemaGenerator

    @operation(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Paths relative to the API's URLconf, given their mount point back.
        prefix = api_path_prefix().rstrip("/")
        self.custom_settings = {**SCHEMA_SETTINGS, "SCHEMA_PATH_PREFIX_INSERT": prefix}
        return super().get(request, *args, **kwargs)


class ApiDocsView(SpectacularSwaggerView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    schema = AutoSchema()
    title = SCHEMA_SETTINGS["TITLE"]

    @operation(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The page's data (its Swagger UI files) is read in get(), while the patch holds.
        with patched_settings(SWAGGER_SETTINGS):
            return super().get(request, *args, **kwargs)
