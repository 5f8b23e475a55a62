"""The dashboard and the admin per shop.

- DashboardSummary.shop: a summary row per shop beside the one of every shop
  (the existing row, `shop` empty, stays the one of every shop).
- Indexes that start with the shop, for a shop's staff: its newest
  notification and its notification list (notification_shop_received), its
  notifications to review (notification_shop_review) and its flagged orders
  (order_shop_flagged_created); the last two are partial, so small.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0006_shops"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="dashboardsummary",
            name="shop",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="payments.shop",
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(fields=["shop", "received_at"], name="notification_shop_received"),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("needs_review", True)),
                fields=["shop", "received_at"],
                name="notification_shop_review",
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(("open_flags__gt", 0)),
                fields=["shop", "created", "id"],
                name="order_shop_flagged_created",
            ),
        ),
    ]
