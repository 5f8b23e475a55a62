"""Input validation and output shapes of the events API (payments/api/events.py)."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from payments.choices import SHOP_EVENT_PING, SHOP_EVENT_TYPES
from payments.models import ShopEvent, ShopEventDelivery
from payments.models.shop_events import DeliveryState
from payments.shop_event_selectors import REPLAY_MAX_RANGE

EVENT_TYPES = (*SHOP_EVENT_TYPES, SHOP_EVENT_PING)


class EventFilterInput(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=EVENT_TYPES, required=False, help_text="Only events of this type."
    )
    order = serializers.UUIDField(required=False, help_text="Only the events of this order.")
    created_after = serializers.DateTimeField(
        required=False,
        default_timezone=UTC,
        help_text="Only events created at or after this time (ISO 8601; without an offset, UTC).",
    )
    created_before = serializers.DateTimeField(
        required=False,
        default_timezone=UTC,
        help_text="Only events created before this time (ISO 8601; without an offset, UTC).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after is not None and before is not None and after >= before:
            raise serializers.ValidationError(
                {"created_before": ["Must be later than created_after."]}
            )
        return attrs


class EventOutput(serializers.ModelSerializer):
    """An event of the shop: what was POSTed to its webhook endpoints.

    `payload` is the JSON body exactly as delivered (the same bytes to every
    endpoint and on every retry), its keys in their order; `order` is the order
    it is about (none for a ping).
    """

    # A choice (not the model's free text) so that the schema names the enum: EventType.
    type = serializers.ChoiceField(choices=EVENT_TYPES, read_only=True)
    payload = serializers.SerializerMethodField()

    class Meta:
        model = ShopEvent
        fields: tuple[str, ...] = ("id", "type", "created", "order", "payload")
        read_only_fields = fields  # an answer: every field is always there

    @extend_schema_field(serializers.DictField())
    def get_payload(self, event: ShopEvent) -> Any:
        """The stored body's bytes read back: the jsonb column keeps no key order."""
        return json.loads(event.body)


class EndpointRefOutput(serializers.Serializer):
    """The webhook endpoint a delivery goes to."""

    id = serializers.IntegerField()
    url = serializers.URLField()


class DeliveryOutput(serializers.ModelSerializer):
    """The event on its way to one endpoint.

    `state`: `delivered` (an attempt got a 2xx), `pending` (no attempt has
    failed yet), `failing` (the last attempt failed; it is retried until
    `gives_up_at`) or `given_up` (the retry window ended; redeliver or replay
    sends it again).
    """

    endpoint = EndpointRefOutput(read_only=True)
    state = serializers.ChoiceField(choices=DeliveryState.choices, read_only=True)
    last_attempt_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = ShopEventDelivery
        fields = (
            "endpoint", "state", "attempts", "last_attempt_at", "last_error", "delivered_at",
            "next_attempt_at", "gives_up_at", "given_up_at",
        )  # fmt: skip
        read_only_fields = fields


class EventDetailOutput(EventOutput):
    """An event with its delivery to each endpoint."""

    deliveries = serializers.SerializerMethodField()

    class Meta(EventOutput.Meta):
        fields = (*EventOutput.Meta.fields, "deliveries")
        read_only_fields = fields

    @extend_schema_field(DeliveryOutput(many=True))
    def get_deliveries(self, event: ShopEvent) -> Any:
        """The context's "deliveries": shop_event_deliveries(event=...), by endpoint."""
        return DeliveryOutput(self.context["deliveries"], many=True).data


class EndpointInput(serializers.Serializer):
    endpoint = serializers.IntegerField(
        required=False, min_value=1, help_text="The id of one of the shop's webhook endpoints."
    )


class RedeliverInput(EndpointInput):
    """Which endpoint to send the event to again; none: every endpoint not delivered yet."""


class RedeliverOutput(serializers.Serializer):
    """What a redelivery made due now: `deliveries`, of which `enqueued` are sent at once (the
    others are to disabled endpoints: they wait until it is enabled)."""

    event = serializers.UUIDField()
    enqueued = serializers.IntegerField()
    deliveries = DeliveryOutput(many=True)


class ReplayInput(EndpointInput):
    """The failed deliveries of the events created in [since, until) are sent again (to
    `endpoint` only, when given)."""

    since = serializers.DateTimeField(
        default_timezone=UTC,
        help_text="ISO 8601 (without an offset, UTC); events created at or after it.",
    )
    until = serializers.DateTimeField(
        default_timezone=UTC,
        help_text="ISO 8601 (without an offset, UTC); events created before it.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        if attrs["until"] - attrs["since"] > REPLAY_MAX_RANGE:
            raise serializers.ValidationError(
                {"until": [f"At most {REPLAY_MAX_RANGE.days} days after since."]}
            )
        return attrs


class ReplayOutput(serializers.Serializer):
    """How many failed deliveries were made due now, and how many of them were enqueued at once
    (the others are to disabled endpoints)."""

    deliveries = serializers.IntegerField()
    enqueued = serializers.IntegerField()
