from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from merchant.pooling import install_lock_timeout
        from payments import checks, deploy_checks  # noqa: F401  (registers the system checks)

        connection_created.connect(install_lock_timeout, dispatch_uid="merchant.pooling")
