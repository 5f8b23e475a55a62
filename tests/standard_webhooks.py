"""A shop's side of the Standard Webhooks signature, with the libraries a shop would use.

`verified` checks a captured delivery with the `standardwebhooks` Python
package; `node_verified` with the npm package of that name run by Node.js
(npm-installed under VAR_DIR at first use, kept for the next runs). A secret made before
Standard Webhooks (not "whsec_" + standard base64) is given to both as raw
bytes (`raw=True`), as README, "Shop webhooks", tells a shop to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks.webhooks
from standardwebhooks import Webhook, WebhookVerificationError

from tests.http_receiver import Received

NODE_SCRIPT = Path(__file__).parent / "data" / "verify_standard_webhooks.js"
NPM_PACKAGE = "standardwebhooks@^1.1"


def shop_webhook(secret: str, *, raw: bool = False) -> Webhook:
    """The verifier a shop builds from its secret: as given, or its raw bytes for a legacy one."""
    return Webhook(secret.encode("utf-8") if raw else secret)


def verified(
    received: Received, secret: str, *, raw: bool = False, body: bytes | None = None
) -> Any:
    """The delivery's payload, verified (WebhookVerificationError when refused)."""
    data = received.body if body is None else body
    return shop_webhook(secret, raw=raw).verify(data, received.headers)


def verifies(received: Received, secret: str, *, raw: bool = False) -> bool:
    try:
        verified(received, secret, raw=raw)
    except WebhookVerificationError:
        return False
    return True


def signatures_in(received: Received) -> int:
    return len(received.headers["webhook-signature"].split(" "))


@contextmanager
def shop_clock_ahead(seconds: float) -> Iterator[None]:
    """The shop's clock `seconds` ahead while verifying: a delivery replayed that much later."""
    real = standardwebhooks.webhooks.datetime

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real.now(tz) + timedelta(seconds=seconds)

    standardwebhooks.webhooks.datetime = Later  # type: ignore[misc]
    try:
        yield
    finally:
        standardwebhooks.webhooks.datetime = real  # type: ignore[misc]


@dataclass
class NodeCheck:
    received: Received
    secret: str
    raw: bool = False
    body: bytes | None = None
    clock_offset_seconds: float = 0


def _npm_install(prefix: Path) -> None:
    """The npm package under `prefix`; the test fails (never skips) when it cannot be had."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.fail("Node.js and npm are needed to verify with the npm package standardwebhooks")
    if (prefix / "node_modules" / "standardwebhooks" / "package.json").exists():
        return  # cached across runs under VAR_DIR
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", NPM_PACKAGE],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm install {NPM_PACKAGE} failed:\n{done.stdout}\n{done.stderr}")


def npm_prefix() -> Path:
    return Path(os.environ["VAR_DIR"]) / "npm-standardwebhooks"


def node_verified(prefix: Path, checks: list[NodeCheck]) -> list[dict[str, Any]]:
    """Each check's result from Node.js: {"ok": True, "payload": ...} or {"ok": False, ...}."""
    _npm_install(prefix)
    cases = [
        {
            "body": (c.received.body if c.body is None else c.body).decode("utf-8"),
            "headers": c.received.headers,
            "secret": c.secret,
            "raw": c.raw,
            "clockOffsetSeconds": c.clock_offset_seconds,
        }
        for c in checks
    ]
    done = subprocess.run(
        ["node", str(NODE_SCRIPT)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NODE_PATH": str(prefix / "node_modules")},
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results
