"""The OpenAPI schema at /api/schema/ says what the API answers, with examples that hold.

Every operation of the served schema (whatever operations there are): each
answer has a body and examples, each error status the ErrorOutput body, every
operation its 401s and 406; every example validates against the schema it
illustrates; the schema is OpenAPI 3.1 and renders without a warning; README
lists every error code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from jsonschema import Draft202012Validator, FormatChecker

from payments.api.error_codes import CODES

pytestmark = pytest.mark.django_db

ERROR_REF = "#/components/schemas/ErrorOutput"
README = Path(__file__).resolve().parents[2] / "README.md"
METHODS = {"get", "put", "patch", "post", "delete"}


@pytest.fixture
def spec(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def examples(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, value) of every request and response example."""
    for name, operation in operations(spec):
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += list(operation["responses"].items())
        for status, body in bodies:
            for media_type, content in body.get("content", {}).items():
                for label, example in content.get("examples", {}).items():
                    yield f"{name} {status} {media_type} {label}", content["schema"], example


def test_the_schema_is_openapi_3_1_and_renders_without_a_warning(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    assert spec["openapi"] == "3.1.0"
    # drf-spectacular's own validation (OpenAPI 3.1's JSON schema); any warning fails.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))


def test_every_answer_has_a_body_with_examples(spec: dict[str, Any]) -> None:
    for name, operation in operations(spec):
        assert operation.get("description") and operation.get("summary"), name
        for status, response in operation["responses"].items():
            content = response.get("content", {})
            assert content.get("application/json", {}).get("examples"), (name, status)
            if int(status) >= 400:
                assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, name
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            assert content.get("examples"), (name, media_type)


def test_every_operation_declares_the_token_refusals_and_406(spec: dict[str, Any]) -> None:
    for name, operation in operations(spec):
        refusals = operation["responses"]["401"]["content"]["application/json"]["examples"]
        codes = {example["value"]["error"] for example in refusals.values()}
        assert codes == {"not_authenticated", "invalid_token", "token_revoked", "shop_disabled"}
        assert "406" in operation["responses"], name


def test_every_error_example_is_a_known_code_under_its_status(spec: dict[str, Any]) -> None:
    for name, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            for example in response["content"]["application/json"]["examples"].values():
                code = example["value"]["error"]
                assert CODES[code].status == int(status), (name, status, code)


def test_every_example_validates_against_its_schema(spec: dict[str, Any]) -> None:
    found = list(examples(spec))
    assert len(found) > 20
    for where, schema, example in found:
        root = {"allOf": [schema], "components": spec["components"]}
        validator = Draft202012Validator(root, format_checker=FormatChecker())
        errors = [error.message for error in validator.iter_errors(example["value"])]
        assert not errors, (where, errors)


def test_the_enums_have_names_of_their_own(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert {"OrderStatus", "Currency", "PaymentStatus", "PaymentSource", "FlagKind"} <= set(schemas)
    assert not [name for name in schemas if name.endswith("Enum")]


def test_every_operation_declares_the_500_server_error(spec: dict[str, Any]) -> None:
    for name, operation in operations(spec):
        examples = operation["responses"]["500"]["content"]["application/json"]["examples"]
        assert [example["value"]["error"] for example in examples.values()] == ["server_error"]
        assert operation["responses"]["500"]["description"].startswith("`server_error`"), name


def test_the_list_filters_name_their_enums(spec: dict[str, Any]) -> None:
    refs = {
        (path, param["name"]): param["schema"].get("$ref")
        for path in ("/api/orders/", "/api/events/")
        for param in spec["paths"][path]["get"]["parameters"]
    }
    assert refs[("/api/orders/", "status")] == "#/components/schemas/OrderStatus"
    assert refs[("/api/events/", "type")] == "#/components/schemas/EventType"


def test_mounted_elsewhere_the_schema_is_the_same_under_that_prefix(
    client: Client, spec: dict[str, Any], settings: Any
) -> None:
    """A host project's own SPECTACULAR_SETTINGS / REST_FRAMEWORK change nothing either."""
    settings.ROOT_URLCONF = "tests.payments.mounted_urls"
    settings.SPECTACULAR_SETTINGS = {"TITLE": "A shop", "OAS_VERSION": "3.0.3"}
    response = client.get(
        "/shop/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}
    )
    mounted = response.json()

    assert {path.removeprefix("/shop") for path in mounted["paths"]} == set(spec["paths"])
    mounted["paths"] = {path.removeprefix("/shop"): item for path, item in mounted["paths"].items()}
    assert mounted == spec


def test_readme_lists_every_error_code() -> None:
    readme = README.read_text()
    assert not [code for code in CODES if f"`{code}`" not in readme]
