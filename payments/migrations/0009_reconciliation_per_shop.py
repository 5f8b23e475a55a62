"""Reconciliation per shop: each shop's ledger has its own checkpoint.

The checkpoints that exist were read from the environment's gateway account:
they become the default shop's.
"""

import django.db.models.deletion
from django.db import migrations, models

import payments.models.shops


def forwards(apps, schema_editor):
    Shop = apps.get_model("payments", "Shop")
    shop = Shop.objects.filter(is_default=True).first()
    if shop is None:
        shop = Shop.objects.create(name="default", is_default=True)
    apps.get_model("payments", "LedgerCheckpoint").objects.update(shop=shop)


def _shop_field(*, null):
    return models.ForeignKey(
        null=null,
        default=payments.models.shops.default_shop_id if not null else None,
        on_delete=django.db.models.deletion.CASCADE,
        related_name="ledger_checkpoints",
        to="payments.shop",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0008_webhook_endpoints"),
    ]

    operations = [
        migrations.AddField(
            model_name="ledgercheckpoint", name="shop", field=_shop_field(null=True)
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="ledgercheckpoint", name="shop", field=_shop_field(null=False)
        ),
        migrations.AlterField(
            model_name="ledgercheckpoint",
            name="currency",
            field=models.CharField(max_length=3),
        ),
        migrations.AddConstraint(
            model_name="ledgercheckpoint",
            constraint=models.UniqueConstraint(
                fields=("shop", "currency"), name="ledger_checkpoint_per_shop"
            ),
        ),
    ]
