"""A client generated from the served /api/schema/ works against the running service.

openapi-python-client (a maintained generator, run as a subprocess of this
interpreter) reads the schema from a live server and writes a client package;
the test imports it and, against the same server and the sandbox gateway,
creates an order, reads it, lists orders, lists the order's events and reads
one with its delivery, and gets the typed error body for a missing order and a
refused token. If the generator warns or fails, the test fails.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from payments.services.webhook_endpoints import webhook_endpoint_create
from payments.shops import shop_default
from sandbox.accounts import ensure_configured_account
from sandbox.models import SandboxOrder
from tests.factories import api_token_key

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = "merchant_api_client"
# No post hooks: the generator would otherwise run ruff over what it wrote.
CONFIG = f"project_name_override: {PACKAGE}\npackage_name_override: {PACKAGE}\npost_hooks: []\n"


@pytest.fixture
def generated(live_gateway: str, tmp_path: Path) -> Iterator[ModuleType]:
    """The client package openapi-python-client makes from the live server's schema."""
    config = tmp_path / "config.yml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "openapi_python_client", "generate"]
    command += ["--url", f"{live_gateway}/api/schema/?format=json", "--meta", "none"]
    command += ["--output-path", str(tmp_path / PACKAGE), "--config", str(config)]
    command += ["--fail-on-warning"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def operation(package: ModuleType, name: str) -> Any:
    """The generated module of an operation (`api/<tag>/<operation id>.py`), or None."""
    api = importlib.import_module(f"{package.__name__}.api")
    for tag in pkgutil.iter_modules(api.__path__):
        module = f"{api.__name__}.{tag.name}.{name}"
        if importlib.util.find_spec(module) is not None:
            return importlib.import_module(module)
    return None


def test_a_generated_client_creates_reads_and_lists_orders_and_events(
    generated: ModuleType, live_gateway: str
) -> None:
    ensure_configured_account()  # the sandbox knows our key, as in `make run`
    # The shop's endpoint, so that the order's events are recorded (nothing listens there).
    endpoint, _secret = webhook_endpoint_create(
        shop=shop_default(), url="http://127.0.0.1:9/events", event_types=["order.awaiting_payment"]
    )
    models = importlib.import_module(f"{PACKAGE}.models")
    client = generated.AuthenticatedClient(
        base_url=live_gateway,
        token=api_token_key(),
        prefix="Token",
        raise_on_unexpected_status=True,  # an answer the schema does not declare fails
    )
    body = models.OrderCreateInput(
        reference="order-42", currency=models.Currency.USD, amount="12.50"
    )

    created = operation(generated, "orders_create").sync_detailed(
        client=client, body=body, idempotency_key="order-42-attempt-1"
    )
    assert created.status_code == 201, created.content
    order = created.parsed
    assert isinstance(order, models.OrderOutput)
    assert (order.amount, order.status) == ("12.50000", models.OrderStatus.AWAITING_PAYMENT)
    assert SandboxOrder.objects.get(transaction=order.transaction).amount_int == order.amount_int

    read = operation(generated, "orders_retrieve").sync(client=client, order_id=order.id)
    assert isinstance(read, models.OrderOutput) and read.to_dict() == order.to_dict()

    listed = operation(generated, "orders_list").sync(client=client, page_size=10)
    assert [o.id for o in listed.results] == [order.id] and listed.next_ is None

    events = operation(generated, "events_list").sync(client=client, order=order.id)
    assert [e.type_ for e in events.results] == ["order.awaiting_payment"], events
    event_id = events.results[0].id
    event = operation(generated, "events_retrieve").sync(client=client, event_id=event_id)
    assert [d.endpoint.id for d in event.deliveries] == [endpoint.pk]
    assert event.payload["data"]["order"]["id"] == str(order.id)


def test_a_generated_client_reads_the_error_body(generated: ModuleType, live_gateway: str) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    retrieve = operation(generated, "orders_retrieve")
    client = generated.AuthenticatedClient(base_url=live_gateway, token=api_token_key())
    refused = generated.AuthenticatedClient(base_url=live_gateway, token="0" * 40)

    missing = retrieve.sync(client=client, order_id=uuid.uuid4())
    unknown = retrieve.sync(client=refused, order_id=uuid.uuid4())

    assert isinstance(missing, models.ErrorOutput) and missing.error == "not_found"
    assert isinstance(unknown, models.ErrorOutput) and unknown.error == "invalid_token"
