"""Webhook endpoints per shop: an event is delivered to each endpoint that takes it.

The delivery state (attempts, next attempt, delivered, given up) moves from the
event to a delivery per endpoint (ShopEventDelivery), and each attempt belongs
to a delivery. Existing events were sent to SHOP_WEBHOOK_URL: when there are
any, the default shop gets its settings endpoint (SHOP_WEBHOOK_URL and
SHOP_WEBHOOK_SECRET as they are now; disabled while the URL is empty, until it
is set) and each event one delivery to it, with the event's state and its id
(a delivery task queued before the upgrade still finds its row), so the
undelivered ones keep being delivered. Reversible: going back keeps each
event's state from its settings endpoint's delivery (else its first one) and
drops the pings.
"""

import uuid

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from payments.conf import payments_settings

DELIVERY_COLUMNS = (
    "attempts",
    "delivered_at",
    "next_attempt_at",
    "gives_up_at",
    "given_up_at",
    "last_error",
)


def _immediate_constraints(schema_editor, immediate):
    # PostgreSQL: with deferred foreign-key checks, rows written here would leave
    # "pending trigger events" that forbid the ALTER TABLEs that follow.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"SET CONSTRAINTS ALL {'IMMEDIATE' if immediate else 'DEFERRED'}")


def _settings_endpoint(apps):
    from payments.secret_box import seal

    Shop = apps.get_model("payments", "Shop")
    WebhookEndpoint = apps.get_model("payments", "WebhookEndpoint")
    shop = Shop.objects.filter(is_default=True).first()
    shop = shop or Shop.objects.create(name="default", is_default=True)
    url, secret = payments_settings.SHOP_WEBHOOK_URL.strip(), payments_settings.SHOP_WEBHOOK_SECRET
    return WebhookEndpoint.objects.create(
        shop=shop,
        url=url,
        description="SHOP_WEBHOOK_URL",
        enabled=bool(url),
        from_settings=True,
        secret_sealed=seal(secret) if secret else "",
    )


def forwards(apps, schema_editor):
    _immediate_constraints(schema_editor, True)
    ShopEvent = apps.get_model("payments", "ShopEvent")
    Order = apps.get_model("payments", "Order")
    ShopEvent.objects.update(
        shop_id=models.Subquery(
            Order.objects.filter(pk=models.OuterRef("order_id")).values("shop_id")[:1]
        )
    )
    if ShopEvent.objects.exists():
        endpoint = _settings_endpoint(apps)
        event = ShopEvent._meta.db_table
        delivery = apps.get_model("payments", "ShopEventDelivery")._meta.db_table
        q = schema_editor.quote_name
        copied = ", ".join(q(c) for c in DELIVERY_COLUMNS)
        # One statement, however many events: the delivery takes the event's id and state.
        # Table and column names from the models, quoted; the one value a parameter.
        insert = f"INSERT INTO {q(delivery)} (id, event_id, endpoint_id, created, {copied})"
        select = f"SELECT id, id, %s, created, {copied} FROM {q(event)}"  # noqa: S608
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"{insert} {select}", [endpoint.pk])
        apps.get_model("payments", "ShopEventAttempt").objects.update(
            delivery_id=models.F("event_id")
        )
    _immediate_constraints(schema_editor, False)


def _state_of_each_event(ShopEventDelivery):
    """Each event's delivery to the settings endpoint, else its first one."""
    chosen: dict = {}
    rows = ShopEventDelivery.objects.order_by("-endpoint__from_settings", "endpoint_id")
    for row in rows.values("event_id", *DELIVERY_COLUMNS).iterator(chunk_size=2000):
        chosen.setdefault(row.pop("event_id"), row)
    return chosen


def backwards(apps, schema_editor):
    _immediate_constraints(schema_editor, True)
    ShopEvent = apps.get_model("payments", "ShopEvent")
    ShopEventDelivery = apps.get_model("payments", "ShopEventDelivery")
    ShopEvent.objects.filter(order__isnull=True).delete()  # pings: events had an order then
    apps.get_model("payments", "ShopEventAttempt").objects.update(
        event_id=models.Subquery(
            ShopEventDelivery.objects.filter(pk=models.OuterRef("delivery_id")).values("event_id")[
                :1
            ]
        )
    )
    for event_id, state in _state_of_each_event(ShopEventDelivery).items():
        ShopEvent.objects.filter(pk=event_id).update(**state)
    # An event whose endpoints were all deleted: nothing left to send.
    ShopEvent.objects.filter(gives_up_at__isnull=True).update(
        gives_up_at=models.F("created"), given_up_at=models.F("created")
    )
    _immediate_constraints(schema_editor, False)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0007_dashboard_per_shop"),
    ]

    operations = [
        migrations.CreateModel(
            name="WebhookEndpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "url",
                    models.URLField(
                        max_length=2000,
                        validators=[django.core.validators.URLValidator(schemes=["http", "https"])],
                        verbose_name="URL",
                    ),
                ),
                ("description", models.CharField(blank=True, max_length=200)),
                ("enabled", models.BooleanField(default=True)),
                (
                    "event_types",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="The event types it takes; empty: every type.",
                    ),
                ),
                ("secret_sealed", models.TextField(blank=True, editable=False)),
                ("previous_secret_sealed", models.TextField(blank=True, editable=False)),
                (
                    "previous_secret_expires_at",
                    models.DateTimeField(blank=True, editable=False, null=True),
                ),
                ("from_settings", models.BooleanField(default=False, editable=False)),
                (
                    "created",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                (
                    "shop",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="webhook_endpoints",
                        to="payments.shop",
                    ),
                ),
            ],
            options={"ordering": ("shop", "id")},
        ),
        migrations.AddConstraint(
            model_name="webhookendpoint",
            constraint=models.UniqueConstraint(
                condition=models.Q(("from_settings", True)),
                fields=("shop",),
                name="one_settings_webhook_endpoint",
            ),
        ),
        migrations.AddField(
            model_name="shopevent",
            name="shop",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="shop_events",
                to="payments.shop",
            ),
        ),
        migrations.AlterField(
            model_name="shopevent",
            name="order",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="shop_events",
                to="payments.order",
            ),
        ),
        # Nullable before it goes, so that going back can add it again to existing rows.
        migrations.AlterField(
            model_name="shopevent", name="gives_up_at", field=models.DateTimeField(null=True)
        ),
        migrations.CreateModel(
            name="ShopEventDelivery",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("gives_up_at", models.DateTimeField()),
                ("given_up_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.CharField(blank=True, max_length=500)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "endpoint",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="payments.webhookendpoint",
                    ),
                ),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="payments.shopevent",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "shop event deliveries",
                "ordering": ("-created", "-id"),
            },
        ),
        migrations.AddConstraint(
            model_name="shopeventdelivery",
            constraint=models.UniqueConstraint(
                fields=("event", "endpoint"), name="one_delivery_per_endpoint"
            ),
        ),
        migrations.AddIndex(
            model_name="shopeventdelivery",
            index=models.Index(
                fields=["delivered_at", "given_up_at", "next_attempt_at"],
                name="shop_event_delivery_due",
            ),
        ),
        migrations.AddIndex(
            model_name="shopeventdelivery",
            index=models.Index(fields=["endpoint", "created"], name="shop_event_delivery_endpoint"),
        ),
        migrations.AddField(
            model_name="shopeventattempt",
            name="delivery",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempt_log",
                to="payments.shopeventdelivery",
            ),
        ),
        migrations.AlterField(
            model_name="shopeventattempt",
            name="event",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempt_log",
                to="payments.shopevent",
            ),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.AlterField(
            model_name="shopevent",
            name="shop",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="shop_events",
                to="payments.shop",
            ),
        ),
        migrations.AlterField(
            model_name="shopeventattempt",
            name="delivery",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempt_log",
                to="payments.shopeventdelivery",
            ),
        ),
        migrations.RemoveField(model_name="shopeventattempt", name="event"),
        migrations.RemoveIndex(model_name="shopevent", name="shop_event_due"),
        *(
            migrations.RemoveField(model_name="shopevent", name=column)
            for column in DELIVERY_COLUMNS
        ),
        migrations.AddIndex(
            model_name="shopevent",
            index=models.Index(fields=["shop", "created"], name="shop_event_shop_created"),
        ),
    ]
