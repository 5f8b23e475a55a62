"""The orders API's OpenAPI settings: one place, for the service and for a host project.

The schema view (`payments.api.schema.ApiSchemaView`) applies `SCHEMA_SETTINGS` itself,
so a shop's own Django project serves the same schema as the service without a
SPECTACULAR_SETTINGS of its own (and keeps its own for its own API); the service's
SPECTACULAR_SETTINGS (merchant/settings.py) is made of them too, for `manage.py
spectacular`.
"""

from __future__ import annotations

from typing import Any

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "Merchant payments API",
    "DESCRIPTION": "Create orders at the gateway and follow their payments.",
    "VERSION": "0.1.0",
    # 3.1 for `webhooks`: the shop events' payload (payments.api.event_schema).
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": ["payments.api.event_schema.shop_event_webhook"],
    # Enum names for readers and generated clients (not FooStatusEnum, BarStatusEnum).
    "ENUM_NAME_OVERRIDES": {
        "OrderStatus": "payments.states.OrderStatus",
        "Currency": "payments.money.CURRENCIES",
        "PaymentStatus": "payments.models.Payment.Status",
        "PaymentSource": "payments.models.Payment.Source",
        "FlagKind": "payments.models.OrderFlag.Kind",
        "DeliveryState": "payments.models.shop_events.DeliveryState",
        "EventType": "payments.api.event_serializers.EVENT_TYPES",
    },
}

# The docs page's Swagger UI: from the installed sidecar package, not a CDN.
SWAGGER_SETTINGS: dict[str, Any] = {
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}
