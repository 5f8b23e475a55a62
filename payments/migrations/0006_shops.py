"""Several shops: the default shop owns every existing order, notification and key.

Existing DRF tokens (rest_framework.authtoken, no longer used) become API tokens of
the default shop with the same key, so a shop's client keeps working; existing
staff who are not superusers become the default shop's staff.
"""

import hashlib

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import payments.models.shops

DEFAULT_SHOP_NAME = "default"


def _default_shop(apps):
    Shop = apps.get_model("payments", "Shop")
    shop = Shop.objects.filter(is_default=True).first()
    return shop or Shop.objects.create(name=DEFAULT_SHOP_NAME, is_default=True)


def _tokens_from_authtoken(schema_editor, shop, ApiToken):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.key, t.created, u.username FROM authtoken_token t "
            "JOIN auth_user u ON u.id = t.user_id"
        )
        rows = cursor.fetchall()
    ApiToken.objects.bulk_create(
        [
            ApiToken(
                shop=shop,
                name=f"{username} (from the earlier token)",
                prefix=key[:8],
                key_sha256=hashlib.sha256(key.encode()).hexdigest(),
                created=created,
            )
            for key, created, username in rows
        ],
        ignore_conflicts=True,
    )


def forwards(apps, schema_editor):
    shop = _default_shop(apps)
    for model in ("Order", "Notification", "IdempotencyKey"):
        apps.get_model("payments", model).objects.update(shop=shop)
    IdempotencyKey = apps.get_model("payments", "IdempotencyKey")
    keep = IdempotencyKey.objects.values("key").annotate(last=models.Max("id"))
    IdempotencyKey.objects.exclude(id__in=[row["last"] for row in keep]).delete()
    _tokens_from_authtoken(schema_editor, shop, apps.get_model("payments", "ApiToken"))
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    ShopMembership = apps.get_model("payments", "ShopMembership")
    ShopMembership.objects.bulk_create(
        [
            ShopMembership(shop=shop, user=user)
            for user in User.objects.filter(is_staff=True, is_superuser=False)
        ]
    )


def _shop_field(related_name, *, null):
    return models.ForeignKey(
        null=null,
        default=payments.models.shops.default_shop_id if not null else None,
        on_delete=django.db.models.deletion.PROTECT,
        related_name=related_name,
        to="payments.shop",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0005_beat_lease"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Shop",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100, unique=True)),
                ("is_default", models.BooleanField(default=False, editable=False)),
                (
                    "gateway_key",
                    models.UUIDField(
                        blank=True, null=True, unique=True, verbose_name="gateway API key id"
                    ),
                ),
                ("gateway_secret_sealed", models.TextField(blank=True, editable=False)),
                (
                    "gateway_secret_env",
                    models.CharField(
                        blank=True,
                        max_length=100,
                        verbose_name="gateway secret's environment variable",
                    ),
                ),
                ("return_hosts", models.JSONField(blank=True, default=list)),
                ("order_ttl_seconds", models.PositiveIntegerField(blank=True, null=True)),
                (
                    "underpaid_tolerance",
                    models.DecimalField(blank=True, decimal_places=6, max_digits=7, null=True),
                ),
                ("active", models.BooleanField(default=True)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"ordering": ("name",)},
        ),
        migrations.AddConstraint(
            model_name="shop",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_default", True)),
                fields=("is_default",),
                name="one_default_shop",
            ),
        ),
        migrations.AddConstraint(
            model_name="shop",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("is_default", True), ("gateway_key__isnull", False), _connector="OR"
                ),
                name="shop_gateway_key_unless_default",
            ),
        ),
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "shop",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to="payments.shop",
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("prefix", models.CharField(editable=False, max_length=12)),
                ("key_sha256", models.CharField(editable=False, max_length=64, unique=True)),
                ("read_only", models.BooleanField(default=False)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_used_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"verbose_name": "API token", "ordering": ("shop", "-created")},
        ),
        migrations.CreateModel(
            name="ShopMembership",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "shop",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to="payments.shop",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="shop_memberships",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.AddConstraint(
            model_name="shopmembership",
            constraint=models.UniqueConstraint(
                fields=("shop", "user"), name="one_membership_per_shop"
            ),
        ),
        migrations.AddField(
            model_name="order", name="shop", field=_shop_field("orders", null=True)
        ),
        migrations.AddField(
            model_name="notification", name="shop", field=_shop_field("notifications", null=True)
        ),
        migrations.AddField(
            model_name="idempotencykey",
            name="shop",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="payments.shop",
            ),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="order", name="shop", field=_shop_field("orders", null=False)
        ),
        migrations.AlterField(
            model_name="notification", name="shop", field=_shop_field("notifications", null=False)
        ),
        migrations.AlterField(
            model_name="idempotencykey",
            name="shop",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="payments.shop"
            ),
        ),
        migrations.RemoveConstraint(model_name="idempotencykey", name="idempotency_key_per_owner"),
        migrations.RemoveField(model_name="idempotencykey", name="owner"),
        migrations.AddConstraint(
            model_name="idempotencykey",
            constraint=models.UniqueConstraint(
                fields=("shop", "key"), name="idempotency_key_per_shop"
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="api_token",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="payments.apitoken",
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["shop", "created", "id"], name="order_shop_created"),
        ),
    ]
