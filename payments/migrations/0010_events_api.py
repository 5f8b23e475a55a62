"""The events API: a shop's events by type, newest first (GET /api/events/?type=...)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0009_reconciliation_per_shop"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="shopevent",
            index=models.Index(fields=["shop", "type", "created"], name="shop_event_shop_type"),
        ),
    ]
