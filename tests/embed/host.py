"""A shop's own Django project with the payments app installed from the built wheel.

Used by test_host_project.py: builds the wheel, makes a fresh virtualenv with it
(its dependencies from the configured index, never the source tree), a
`startproject` with the README's settings and URL blocks, and starts processes: the
shop project's gunicorn, and the sandbox gateway as `make run` does (this checkout's
service with `sandbox.site_settings`, and a Celery worker that delivers its IPNs).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
REPO_BIN = Path(sys.executable).parent
# A gateway account (the tests' own values, not a secret): the shop's, made in the sandbox.
GATEWAY_API_KEY = "0b6a5a54-2f0e-4d49-9a3c-7e1f2d3c4b5a"
GATEWAY_API_SECRET = (
    "ZW1iZWQtdGVzdC1zZWNyZXQtZm9yLXRoZS1ob3N0LXByb2plY3QtMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NQ=="
)
# Only what a process needs from the test's environment: never its DATABASE_URL or broker.
PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_FIND_LINKS", "PIP_CERT")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    """Run to the end; the combined output, whatever the exit status (the caller asserts)."""
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def ok(output: str) -> str:
    assert output.startswith("exit 0\n"), output
    return output


def readme_block(marker: str) -> str:
    """The fenced Python block that follows `<!-- embed:<marker> -->` in the README."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- embed:{marker} -->\n```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no <!-- embed:{marker} --> block"
    return found.group(1)


def build_venv(tmp: Path) -> Path:
    """The wheel of this checkout, installed (no extras) into a fresh virtualenv."""
    wheels = tmp / "wheels"
    ok(
        run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, REPO],
            cwd=tmp,
            env=clean_env(),
        )
    )
    (wheel,) = wheels.glob("merchant_payments-*.whl")
    venv = tmp / "venv"
    ok(run([sys.executable, "-m", "venv", venv], cwd=tmp, env=clean_env()))
    ok(run([venv / "bin" / "pip", "install", "--quiet", wheel], cwd=tmp, env=clean_env()))
    return venv


@contextmanager
def process(
    args: list[str | Path], *, cwd: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A background process, stopped (and its log kept) at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(arg) for arg in args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: the server exited\n{log.read_text()}"
        try:
            requests.get(url, timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):  # a first answer slow under load
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout} s\n{log.read_text()}")
