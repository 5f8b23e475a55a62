"""Logs: one format everywhere (plain or JSON), a request id on every line of a request and
in the Celery tasks it enqueues, and no line twice."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import Client

from merchant.logs import RequestIdFilter, logging_config, make_formatter
from payments.models import ShopEventAttempt
from payments.testing import ipn_body, signed_headers
from tests.factories import accepted_order

LOG_LINE = re.compile(r'^(\{"|\d{4}-\d\d-\d\d )')  # a JSON or a plain log line
SHOP_URL = "http://127.0.0.1:9/shop/events"  # nothing listens: the delivery fails, logged
SHOP_SECRET = "shop-secret-for-the-log-tests"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger writes in the JSON format, as the settings configure it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(make_formatter("json"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield out
    root.removeHandler(handler)


def parsed(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def paid_ipn(client: Client, order: Any, request_id: str) -> Any:
    body = ipn_body(transaction=order.transaction, status="paid", amount_int=order.amount_int)
    signed = signed_headers(body)
    return client.post(
        "/payments/ipn/",
        data=body,
        content_type=signed.pop("Content-Type"),
        headers={**signed, "X-Request-ID": request_id},
    )


def test_an_unknown_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config("xml", "INFO")


@pytest.mark.django_db
def test_json_lines_parse_and_carry_the_request_id_and_the_order(json_lines: io.StringIO) -> None:
    order = accepted_order()
    json_lines.seek(0)
    json_lines.truncate()
    request_id = uuid.uuid4().hex
    answer = paid_ipn(Client(), order, request_id)
    assert answer.content == b"[OK]"
    assert answer["X-Request-ID"] == request_id  # echoed

    lines = parsed(json_lines.getvalue())
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert {line["request_id"] for line in lines} == {request_id}  # every line of the request
    ipn = next(line for line in lines if line["logger"] == "payments.ipn")
    assert ipn["transaction"] == str(order.transaction)
    assert ipn["order_id"] == str(order.pk)
    assert ipn["outcome"] == "applied"


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["a b", "x" * 40, "<script>", "../../etc/passwd"])
def test_an_insane_incoming_request_id_is_replaced(given: str, json_lines: io.StringIO) -> None:
    answer = Client().get("/livez", HTTP_X_REQUEST_ID=given)
    assert answer["X-Request-ID"] != given
    assert uuid.UUID(answer["X-Request-ID"])


@pytest.mark.django_db
def test_without_a_header_each_request_gets_its_own_id() -> None:
    first, second = Client().get("/livez"), Client().get("/livez")
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_the_plain_format_shows_the_request_id_or_a_dash() -> None:
    record = logging.LogRecord("payments.ipn", logging.INFO, __file__, 1, "IPN %s", ("x",), None)
    assert make_formatter("plain").format(record).endswith(" INFO payments.ipn [-]: IPN x")
    record.request_id = "abc"
    assert make_formatter("plain").format(record).endswith(" INFO payments.ipn [abc]: IPN x")


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.parametrize("log_format", ["json", "plain"])
def test_a_task_logs_with_the_id_of_the_request_that_enqueued_it_and_no_line_twice(
    log_format: str, start_worker: Any, settings: Any
) -> None:
    settings.SHOP_WEBHOOK_URL, settings.SHOP_WEBHOOK_SECRET = SHOP_URL, SHOP_SECRET
    worker = start_worker(
        f"logs-{log_format}",
        LOG_FORMAT=log_format,
        SHOP_WEBHOOK_URL=SHOP_URL,
        SHOP_WEBHOOK_SECRET=SHOP_SECRET,
    )
    request_id = uuid.uuid4().hex
    order = accepted_order()
    answer = paid_ipn(Client(), order, request_id)
    assert answer.content == b"[OK]"
    wait_for(lambda: ShopEventAttempt.objects.filter(delivery__event__order=order).exists())
    worker.stop()  # flushes its output
    text = Path(worker.log_path).read_text()

    delivery = [line for line in text.splitlines() if "shop event" in line and "attempt 1" in line]
    assert len(delivery) == 1, text[-3000:]
    if log_format == "json":
        (line,) = parsed(delivery[0])
        assert line["request_id"] == request_id
        assert line["order_id"] == str(order.pk)
        assert line["transaction"] == str(order.transaction)
        assert line["result"] == "failed"
        assert all(json.loads(x) for x in text.splitlines() if x.startswith("{"))
    else:
        assert f"[{request_id}]" in delivery[0]
    # Celery's own lines about the task carry the id too, each once.
    task_lines = [line for line in text.splitlines() if request_id in line]
    assert any("Task payments.tasks.deliver_shop_event" in line for line in task_lines), text
    log_lines = [line for line in text.splitlines() if LOG_LINE.match(line)]
    assert len(log_lines) > 5, text
    repeated = {line: n for line, n in Counter(log_lines).items() if n > 1}
    assert not repeated, repeated


def test_gunicorn_logs_its_own_lines_in_the_same_format(tmp_path: Path) -> None:
    """Master, worker and access lines: all JSON; an access line has the response's id."""
    from tests.conftest import BASE_DIR, service_env
    from tests.faults.conftest import _no_control_socket, free_port

    port, log = free_port(), tmp_path / "web.log"
    command = [sys.executable, "-m", "gunicorn", "merchant.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--worker-class", "gthread", "--workers", "2", "--access-logfile", "-"]
    command += ["--logger-class", "merchant.logs.GunicornLogger", *_no_control_socket()]
    with log.open("wb") as out:
        web = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=service_env(LOG_FORMAT="json"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        request_id = uuid.uuid4().hex
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/livez",
                    headers={"X-Request-ID": request_id},
                    timeout=5,
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and web.poll() is None, log.read_text()
                time.sleep(0.2)
        assert answer.headers["X-Request-ID"] == request_id
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(timeout=30)
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert any(
        r["logger"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records
    )
    (access,) = [r for r in records if r["logger"] == "gunicorn.access"]
    assert "GET /livez" in access["message"]
    assert access["request_id"] == request_id
    repeated = {line: n for line, n in Counter(lines).items() if n > 1}
    assert not repeated, repeated


class _RaisesOnDel:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __del__(self) -> None:
        raise self.error


def test_an_unraisable_exception_is_a_log_record_and_a_quit_is_not(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from merchant.logs import log_unraisable

    monkeypatch.setattr(sys, "unraisablehook", log_unraisable)
    with caplog.at_level(logging.ERROR, logger="merchant.unraisable"):
        _RaisesOnDel(ValueError("broken finaliser"))  # collected at once: __del__ raises
        _RaisesOnDel(SystemExit(0))  # the quit signal's exit inside a callback

    (record,) = [r for r in caplog.records if r.name == "merchant.unraisable"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
