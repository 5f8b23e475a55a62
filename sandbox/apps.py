from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "Sandbox gateway"

    def ready(self) -> None:
        from sandbox import checks  # noqa: F401  (registers the system checks)
        from sandbox.accounts import configured_account_on_migrate

        post_migrate.connect(configured_account_on_migrate, sender=self)
