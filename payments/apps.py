from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        from django.core.signals import setting_changed
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from merchant.pooling import install_lock_timeout
        from payments import checks, deploy_checks  # noqa: F401  (registers the system checks)
        from payments.services import webhook_endpoints

        connection_created.connect(install_lock_timeout, dispatch_uid="merchant.pooling")
        # SHOP_WEBHOOK_URL / _SECRET: the default shop's endpoint, in step after `migrate`
        # (and in each process before its first event; payments.services.webhook_endpoints).
        post_migrate.connect(webhook_endpoints.sync_on_migrate, sender=self)
        setting_changed.connect(webhook_endpoints.settings_changed)
