"""Migration 0006 (several shops) on a database that has a single shop's data already."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("payments", "0005_beat_lease")]
# rest_framework.authtoken's table as an older install has it (the app is no longer installed).
AUTHTOKEN_TABLE = (
    "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
    "created timestamp with time zone NOT NULL, user_id integer NOT NULL UNIQUE)"
)
AFTER = [("payments", "0006_shops")]


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_database(transactional_db: None) -> Any:
    """The schema as it was before shops, with an order, a key, a token and staff."""
    apps = _migrate(BEFORE)
    made = "authtoken_token" not in connection.introspection.table_names()
    if made:
        with connection.cursor() as cursor:
            cursor.execute(AUTHTOKEN_TABLE)
    yield apps
    if made:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")
    _migrate(_latest())


def _latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def test_existing_rows_belong_to_the_default_shop_and_old_tokens_still_work(
    old_database: Any,
) -> None:
    apps = old_database
    user_model = apps.get_model("auth", "User")
    owner = user_model.objects.create(username="shop", password="!")
    reviewer = user_model.objects.create(username="rita", password="!", is_staff=True)
    user_model.objects.create(username="root", password="!", is_staff=True, is_superuser=True)
    order = apps.get_model("payments", "Order").objects.create(
        reference="old-1",
        amount_int=100,
        currency="BTC",
        deadline=timezone.now(),
        transaction=uuid.uuid4(),
    )
    key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
            [key, timezone.now(), owner.pk],
        )
    for user in (owner, reviewer):  # one key per user then; one per shop now
        apps.get_model("payments", "IdempotencyKey").objects.create(
            owner=user, key="same", fingerprint=user.username, order=order
        )

    apps = _migrate(AFTER)

    shop = apps.get_model("payments", "Shop").objects.get()
    assert (shop.is_default, shop.gateway_key) == (True, None)
    assert apps.get_model("payments", "Order").objects.get(pk=order.pk).shop_id == shop.pk
    token = apps.get_model("payments", "ApiToken").objects.get()
    assert token.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert token.shop_id == shop.pk
    keys = apps.get_model("payments", "IdempotencyKey").objects.all()
    assert [(k.key, k.shop_id) for k in keys] == [("same", shop.pk)]  # one per shop and key
    members = apps.get_model("payments", "ShopMembership").objects.all()
    assert [(m.user_id, m.shop_id) for m in members] == [(reviewer.pk, shop.pk)]
