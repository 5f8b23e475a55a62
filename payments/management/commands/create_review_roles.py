"""`python manage.py create_review_roles`: the admin's staff roles, as groups.

- "Payments viewers": view permission on every model of the payments app.
  They see every list, every page and the dashboard, and may export CSV;
  they change nothing.
- "Payments reviewers": the same, plus changing flags: they mark flags
  reviewed (with a comment kept in the audit trail) and resolve orders.
  Nothing else: they neither reconcile orders nor replay notifications.
- "Shop token managers": their shops' API tokens: see them, make one (its
  key shown once), revoke some. Nothing else (combine with a group above).

A role says what a user may do; a shop membership (ShopMembership, superusers
add them in the admin) says on which shops' orders: a staff user with none
sees no order. Superusers see every shop; the records of the whole service
(rejected requests, reconciliation runs, the ledger's checkpoints,
memberships) are theirs only, as are adding or changing a shop. Reconciling
orders needs the change permission on orders; replaying a notification is for
superusers only. Idempotent: running it again resets each group's permissions
to exactly these. Put a user in a group, give them a shop and tick "staff
status" (the admin is for staff only).
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
TOKEN_MANAGERS = "Shop token managers"  # noqa: S105  (a group's name)
REVIEWER_EXTRA = ("change_orderflag",)
TOKEN_MANAGER_PERMISSIONS = ("view_shop", "view_apitoken", "add_apitoken", "change_apitoken")


def review_roles() -> dict[str, list[Permission]]:
    """The groups' permissions (created first if migrate has not made them yet)."""
    config = apps.get_app_config("payments")
    create_permissions(config, verbosity=0)
    types = ContentType.objects.get_for_models(*config.get_models()).values()
    payments_perms = Permission.objects.filter(content_type__in=list(types))
    view = list(payments_perms.filter(codename__startswith="view_"))
    extra = list(payments_perms.filter(codename__in=REVIEWER_EXTRA))
    tokens = list(payments_perms.filter(codename__in=TOKEN_MANAGER_PERMISSIONS))
    return {VIEWERS: view, REVIEWERS: view + extra, TOKEN_MANAGERS: tokens}


class Command(BaseCommand):
    help = (
        'Create the groups "Payments viewers" (view only), "Payments reviewers" (+ flags) '
        'and "Shop token managers" (API tokens).'
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            for name, permissions in review_roles().items():
                group, created = Group.objects.get_or_create(name=name)
                group.permissions.set(permissions)
                self.stdout.write(
                    f"{'created' if created else 'updated'} {name!r}: "
                    f"{len(permissions)} permissions"
                )
