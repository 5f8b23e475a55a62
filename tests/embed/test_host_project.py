"""The app inside a shop's own Django project, installed from the wheel (README: Inside
your own Django project).

One test, in the order a shop developer goes: build and install the wheel into a
fresh virtualenv, `startproject`, add the app alone (clear check errors that name the
settings, never an AttributeError), add the README's settings and URL blocks (`check`
clean, `migrate`), serve the project, create an order with `order_create` against the
sandbox gateway, pay it there, and see the sandbox's signed IPN reach the project's
`payments/ipn/` and its `order_paid` receiver fire. On the way: the project serves the
service's own API schema (under its prefix) and the API's JSON error body. About a minute.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests
from django.test import Client

from tests.embed.host import (
    GATEWAY_API_KEY,
    GATEWAY_API_SECRET,
    REPO,
    REPO_BIN,
    build_venv,
    clean_env,
    free_port,
    ok,
    process,
    readme_block,
    run,
    wait_http,
)

pytestmark = pytest.mark.embed

# The shop's own app: its order_paid receiver writes what it got to a file.
SHOP_APPS = """
import json
import os

from django.apps import AppConfig


def cart_paid(sender, order, **kwargs):
    with open(os.environ["SHOP_PAID_LOG"], "a") as log:
        log.write(json.dumps({"id": str(order.id), "reference": order.reference,
                              "status": order.status}) + "\\n")


class ShopConfig(AppConfig):
    name = "shop"

    def ready(self):
        from payments.signals import order_paid

        order_paid.connect(cart_paid, dispatch_uid="shop.cart_paid")
"""

CREATE_ORDER = """
from payments.services import NewOrder, order_create
order, _ = order_create(new=NewOrder(reference="cart-7", amount_int=1_000_000, currency="BTC"))
print("ORDER " + json.dumps({"id": str(order.id), "transaction": str(order.transaction),
                             "status": order.status}))
"""


def _start_project(venv: Path, tmp: Path) -> Path:
    project = tmp / "shopsite"
    project.mkdir()
    env = clean_env()
    ok(run([venv / "bin" / "django-admin", "startproject", "shopsite", project], cwd=tmp, env=env))
    ok(run([venv / "bin" / "python", "manage.py", "startapp", "shop"], cwd=project, env=env))
    (project / "shop" / "apps.py").write_text(SHOP_APPS)
    return project


def _manage(venv: Path, project: Path, env: dict[str, str], *args: str) -> str:
    return run([venv / "bin" / "python", "manage.py", *args], cwd=project, env=env)


def _assert_named_errors(output: str) -> None:
    assert not output.startswith("exit 0\n"), output
    for check_id, setting in (
        ("payments.E010", "PUBLIC_BASE_URL"),
        ("payments.E011", "GATEWAY_API_URL"),
        ("payments.E012", "GATEWAY_PAYMENT_HOST"),
        ("payments.E013", "INSTALLED_APPS lacks rest_framework"),
    ):
        assert f"({check_id}) {setting}" in output, output
    assert "AttributeError" not in output and "Traceback" not in output, output


def _sandbox_env(tmp: Path, port: int) -> dict[str, str]:
    """The sandbox gateway as `make run` serves it: its own process, this checkout's code."""
    return clean_env(
        DJANGO_SETTINGS_MODULE="sandbox.site_settings",
        DJANGO_DEBUG="1",
        DJANGO_SECRET_KEY="embed-test-sandbox-key-0123456789abcdefghijklmnopqrstuvwxyz",
        VAR_DIR=str(tmp / "sandbox-var"),
        SANDBOX_URL=f"http://127.0.0.1:{port}",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        PORT=str(port),
        # After migrate the sandbox makes this account: the shop project's.
        GATEWAY_API_KEY=GATEWAY_API_KEY,
        GATEWAY_API_SECRET=GATEWAY_API_SECRET,
        SANDBOX_ACCOUNT_ON_MIGRATE="1",
    )


@contextmanager
def _sandbox(tmp: Path, port: int) -> Iterator[dict[str, str]]:
    env = _sandbox_env(tmp, port)
    ok(run([REPO_BIN / "python", "manage.py", "migrate", "--noinput"], cwd=REPO, env=env))
    web_log, worker_log = tmp / "sandbox-web.log", tmp / "sandbox-worker.log"
    web: list[str | Path] = [REPO_BIN / "gunicorn", "merchant.wsgi", "--bind", f"127.0.0.1:{port}"]
    web += ["--workers", "1", "--worker-class", "gthread", "--threads", "4"]
    # The worker that delivers the sandbox's IPNs (Procfile: worker).
    worker: list[str | Path] = [
        REPO_BIN / "celery",
        "--app",
        "merchant",
        "worker",
        "--concurrency",
        "1",
    ]
    worker += ["--queues", "sandbox", "--hostname", "embed-sandbox@%h", "--loglevel", "INFO"]
    with ExitStack() as stack:
        server = stack.enter_context(process(web, cwd=REPO, env=env, log=web_log))
        stack.enter_context(process(worker, cwd=REPO, env=env, log=worker_log))
        wait_http(f"http://127.0.0.1:{port}/sandbox/", server, web_log)
        yield env


SCHEMA_ACCEPT = {"Accept": "application/vnd.oai.openapi+json"}


def _assert_the_services_api(base: str, client: Client) -> None:
    """The project's /payments/api/ is the service's /api/: its schema (generated here, in
    the service's settings) but for the prefix, and its JSON 404 for an unknown path."""
    service = client.get("/api/schema/", headers=SCHEMA_ACCEPT).json()
    hosted = requests.get(f"{base}/payments/api/schema/", headers=SCHEMA_ACCEPT, timeout=30)
    assert hosted.status_code == 200, hosted.text[:500]
    schema = hosted.json()
    assert schema["openapi"] == service["openapi"] == "3.1.0"
    assert schema["webhooks"] == service["webhooks"] and schema["webhooks"]
    assert schema["components"] == service["components"]
    assert schema["info"] == service["info"]
    paths = {path.removeprefix("/payments"): item for path, item in schema["paths"].items()}
    assert set(schema["paths"]) == {f"/payments{path}" for path in service["paths"]}
    assert paths == service["paths"]

    docs = requests.get(f"{base}/payments/api/docs/", timeout=30)
    assert docs.status_code == 200 and "Merchant payments API" in docs.text
    assert "drf_spectacular_sidecar/swagger-ui-dist/" in docs.text  # not a CDN

    missing = requests.get(f"{base}/payments/api/no-such-thing/", timeout=30)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json"
    assert missing.json()["error"] == "not_found"


def _wait_paid(paid_log: Path, order_id: str, logs: list[Path], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if paid_log.exists():
            for line in paid_log.read_text().splitlines():
                got = json.loads(line)
                if got["id"] == order_id:
                    return dict(got)
        time.sleep(0.25)
    shown = "\n\n".join(f"== {log.name}\n{log.read_text()[-4000:]}" for log in logs)
    raise AssertionError(f"order_paid never reached the shop's receiver\n{shown}")


def test_a_shop_project_takes_a_payment_through_the_installed_app(
    tmp_path: Path, client: Client
) -> None:
    venv = build_venv(tmp_path)
    project = _start_project(venv, tmp_path)
    settings_py = project / "shopsite" / "settings.py"
    startproject_settings = settings_py.read_text()

    # The app alone, none of its settings: errors that name them, at check and migrate.
    settings_py.write_text(startproject_settings + '\nINSTALLED_APPS += ["payments"]\n')
    bare = clean_env()
    _assert_named_errors(_manage(venv, project, bare, "check"))
    _assert_named_errors(_manage(venv, project, bare, "migrate", "--noinput"))

    # The README's blocks, as written there.
    settings_py.write_text(
        startproject_settings + readme_block("settings") + '\nINSTALLED_APPS += ["shop"]\n'
    )
    urls_py = project / "shopsite" / "urls.py"
    urls_py.write_text(urls_py.read_text() + "\n" + readme_block("urls"))
    port, sandbox_port = free_port(), free_port()
    paid_log = tmp_path / "paid.jsonl"
    env = clean_env(
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        GATEWAY_API_URL=f"http://127.0.0.1:{sandbox_port}/sandbox/api/",
        GATEWAY_PAYMENT_HOST=f"http://127.0.0.1:{sandbox_port}/sandbox",
        GATEWAY_API_KEY=GATEWAY_API_KEY,
        GATEWAY_API_SECRET=GATEWAY_API_SECRET,
        SHOP_PAID_LOG=str(paid_log),
    )
    assert "System check identified no issues" in ok(_manage(venv, project, env, "check"))
    ok(_manage(venv, project, env, "migrate", "--noinput"))

    host_log = tmp_path / "shop-web.log"
    host: list[str | Path] = [
        venv / "bin" / "gunicorn",
        "shopsite.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    host += ["--workers", "1", "--worker-class", "gthread", "--threads", "4"]
    host += ["--access-logfile", "-"]
    with (
        _sandbox(tmp_path, sandbox_port) as sandbox_env,
        process(host, cwd=project, env=env, log=host_log) as server,
    ):
        wait_http(f"http://127.0.0.1:{port}/payments/api/schema/", server, host_log)
        _assert_the_services_api(f"http://127.0.0.1:{port}", client)
        created = ok(_manage(venv, project, env, "shell", "-c", "import json\n" + CREATE_ORDER))
        order = json.loads(created.split("ORDER ", 1)[1].splitlines()[0])
        assert order["status"] == "awaiting_payment", created
        # The payer pays at the gateway: the sandbox posts its signed IPN to
        # PUBLIC_BASE_URL + /payments/ipn/, the URL the order gave it.
        cmd = ["manage.py", "sandbox_pay", order["transaction"], "--status", "paid"]
        ok(run([REPO_BIN / "python", *cmd], cwd=REPO, env=sandbox_env))
        logs = [host_log, tmp_path / "sandbox-web.log", tmp_path / "sandbox-worker.log"]
        got = _wait_paid(paid_log, order["id"], logs)

    assert got == {"id": order["id"], "reference": "cart-7", "status": "paid"}
    assert '"POST /payments/ipn/ HTTP/1.1" 200' in host_log.read_text()
