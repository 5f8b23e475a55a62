"""Rest-Sign against the protocol's test vectors (checked with openssl) and its pitfalls."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from payments.gateway.signing import InvalidSecret, sign, verify

# A copy of the protocol's published signing vectors (checked with `openssl dgst`),
# kept in the repository so that any checkout can run the tests.
VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "signing-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
CASES = VECTORS["cases"]
PITFALLS = {pitfall["name"]: pitfall for pitfall in VECTORS["pitfalls"]}
IPN_PAID = next(case for case in CASES if case["name"] == "ipn_paid")


def test_the_vectors_file_has_the_cases_and_pitfalls() -> None:
    assert len(CASES) >= 7
    assert {"secret_not_base64_decoded", "trailing_newline"} <= PITFALLS.keys()


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_sign_reproduces_the_vector(case: dict[str, str]) -> None:
    assert sign(case["body"].encode("utf-8"), case["secret"]) == case["rest_sign"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_verify_accepts_the_vector(case: dict[str, str]) -> None:
    assert verify(case["body"].encode("utf-8"), case["rest_sign"], case["secret"])


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_verify_accepts_the_signature_as_bytes(case: dict[str, str]) -> None:
    assert verify(case["body"].encode("utf-8"), case["rest_sign"].encode("ascii"), case["secret"])


def test_the_secret_used_as_text_gives_a_signature_that_verify_rejects() -> None:
    pitfall = PITFALLS["secret_not_base64_decoded"]
    body = pitfall["body"].encode("utf-8")
    assert sign(body, IPN_PAID["secret"]) != pitfall["wrong_rest_sign"]
    assert not verify(body, pitfall["wrong_rest_sign"], IPN_PAID["secret"])


def test_one_more_byte_changes_the_signature() -> None:
    pitfall = PITFALLS["trailing_newline"]
    body = pitfall["body"].encode("utf-8")
    assert body == IPN_PAID["body"].encode("utf-8") + b"\n"
    assert sign(body, IPN_PAID["secret"]) == pitfall["rest_sign_of_this_body"]
    assert not verify(body, IPN_PAID["rest_sign"], IPN_PAID["secret"])


def test_a_signature_of_another_body_is_rejected() -> None:
    other = next(case for case in CASES if case["name"] == "ipn_cancelled")
    assert not verify(IPN_PAID["body"].encode(), other["rest_sign"], IPN_PAID["secret"])


def test_the_right_signature_with_another_secret_is_rejected() -> None:
    jpy = next(case for case in CASES if case["name"] == "order_create_jpy_multipay")
    assert jpy["secret"] != IPN_PAID["secret"]
    assert not verify(IPN_PAID["body"].encode(), IPN_PAID["rest_sign"], jpy["secret"])


TRUNCATED = IPN_PAID["rest_sign"][:-4]
ONE_BYTE_SHORT = base64.b64encode(base64.b64decode(IPN_PAID["rest_sign"])[:-1]).decode()


@pytest.mark.parametrize(
    "rest_sign",
    [
        None,
        "",
        b"",
        "not base64!",
        "%%%%",
        TRUNCATED,
        ONE_BYTE_SHORT,
        IPN_PAID["rest_sign"] + "AA==",
    ],
    ids=["none", "empty", "empty-bytes", "not-base64", "symbols", "truncated", "short", "long"],
)
def test_verify_rejects_missing_or_malformed_signatures(rest_sign: str | bytes | None) -> None:
    assert not verify(IPN_PAID["body"].encode(), rest_sign, IPN_PAID["secret"])


@pytest.mark.parametrize("secret", ["not base64!", "abc", "AAEC$AwQ="])
def test_a_secret_that_is_not_base64_raises_invalid_secret(secret: str) -> None:
    with pytest.raises(InvalidSecret):
        sign(b"nonce=1", secret)
    with pytest.raises(InvalidSecret):
        verify(b"nonce=1", IPN_PAID["rest_sign"], secret)
