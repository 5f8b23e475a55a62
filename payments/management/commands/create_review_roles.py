"""`python manage.py create_review_roles`: the admin's two staff roles, as groups.

- "Payments viewers": view permission on every model of the payments app.
  They see every list, every page and the dashboard, and may export CSV;
  they change nothing.
- "Payments reviewers": the same, plus changing flags: they mark flags
  reviewed (with a comment kept in the audit trail). Nothing else: they
  neither reconcile orders nor replay notifications.

Reconciling orders needs the change permission on orders; replaying a
notification is for superusers only. Idempotent: running it again resets
each group's permissions to exactly these. Put a user in a group and tick
"staff status" (the admin is for staff only).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand
from django.db import transaction

VIEWERS = "Payments viewers"
REVIEWERS = "Payments reviewers"
REVIEWER_EXTRA = ("change_orderflag",)


def review_roles() -> dict[str, list[Permission]]:
    """The groups' permissions (created first if migrate has not made them yet)."""
    config = apps.get_app_config("payments")
    create_permissions(config, verbosity=0)
    types = ContentType.objects.get_for_models(*config.get_models()).values()
    payments_perms = Permission.objects.filter(content_type__in=list(types))
    view = list(payments_perms.filter(codename__startswith="view_"))
    extra = list(payments_perms.filter(codename__in=REVIEWER_EXTRA))
    return {VIEWERS: view, REVIEWERS: view + extra}


class Command(BaseCommand):
    help = 'Create the groups "Payments viewers" (view only) and "Payments reviewers" (+ flags).'

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            for name, permissions in review_roles().items():
                group, created = Group.objects.get_or_create(name=name)
                group.permissions.set(permissions)
                self.stdout.write(
                    f"{'created' if created else 'updated'} {name!r}: "
                    f"{len(permissions)} permissions"
                )
