"""A cluster of the service on one machine: each node a real process, as on several machines.

`start_cluster(configuration)` starts, on the test database:

- the sandbox gateway as a gunicorn of its own (SANDBOX_ENABLED=1), its API behind a
  `RecordingHttpProxy` that notes every merchant/order/create nonce;
- two web nodes (gunicorn, the Procfile's web process) with their own VAR_DIR and port,
  one DJANGO_SECRET_KEY, behind a `RoundRobinBalancer` whose URL is PUBLIC_BASE_URL (so
  the sandbox's IPNs go through it too);
- two Celery worker nodes consuming every queue (the Procfile's worker line) and one beat;
- a shop's webhook endpoint (a ScriptedReceiver answering 200) that records every event.

Each configuration has a broker of its own: a RabbitMQ vhost created for the run (or the
default vhost, emptied, where rabbitmqctl cannot be used), or a Redis database of this
test's (emptied before and after). With `pooler`, the service's processes reach PostgreSQL
through PgBouncer in transaction mode (DATABASE_POOLER=transaction); the sandbox, the
gateway's side, connects directly.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from merchant import queues
from tests.cluster.balancer import RecordingHttpProxy, RoundRobinBalancer
from tests.conftest import BASE_DIR, database_url, service_env
from tests.faults.conftest import HOST, _no_control_socket, free_port, require_postgres
from tests.http_receiver import ScriptedReceiver

RABBITMQ_VHOST = "merchant_cluster"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/"
STARTUP_TIMEOUT = 60.0
SHOP_WEBHOOK_SECRET = "cluster-test-shop-secret"
# One line per configuration run, printed at the end of the session.
SUMMARIES: list[str] = []

# Short timings (settings.py documents each); tests/cluster/service_settings.py shortens
# the beat entries that catch up on lost work.
QUICK_TIMINGS = {
    "SANDBOX_IPN_RETRY_SECONDS": "2",  # the gateway re-sends an unacknowledged IPN
    "SANDBOX_IPN_TIMEOUT": "3",
    "SANDBOX_IPN_SWEEP_GRACE_SECONDS": "3",
    "SHOP_WEBHOOK_TIMEOUT": "3",
    "PAYMENTS_SWEEP_SECONDS": "apply_pending=2,expire=0,stuck=0,ledger=0",
    "BEAT_LEASE_SECONDS": "6",
    "GATEWAY_CONNECT_TIMEOUT": "1",
    "GATEWAY_READ_TIMEOUT": "5",
    "GATEWAY_CALL_LOCK_SECONDS": "8",
    # No stale-nonce retries: the key's call lock keeps the nonces in order, so a stale
    # refusal would show (a failed creation, and the tap's check), not be hidden. It also
    # keeps short the time after which a creation killed with its node counts as abandoned
    # (payments.services.orders.creation_bound_seconds: 20 s here).
    "GATEWAY_NONCE_RETRIES": "0",
    "HEALTH_WORKER_BEAT_SECONDS": "5",
}


@dataclass(frozen=True)
class Configuration:
    name: str
    broker: str  # "rabbitmq" or "redis"
    redis_db: int = 0
    pooler: bool = False


CONFIGURATIONS = [
    Configuration("postgresql+rabbitmq", "rabbitmq"),
    Configuration("postgresql+redis", "redis", redis_db=11),
    Configuration("pgbouncer+redis", "redis", redis_db=12, pooler=True),
]


class Node:
    """One process of the cluster in a session of its own: killed, its children go with it."""

    # A gunicorn of the service is up when the IPN endpoint answers GET with 405 (no database).
    probe = ("/payments/ipn/", 405)

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path, url: str = ""
    ) -> None:
        self.name, self.argv, self.env, self.log_path, self.url = name, argv, env, log_path, url
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.starts = 0

    def start(self) -> Node:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def log_since_start(self) -> str:
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")
        return ""

    def _answers(self) -> bool:
        if self.url:  # a gunicorn
            conn = http.client.HTTPConnection(HOST, int(self.url.rsplit(":", 1)[1]), timeout=2)
            path, status = self.probe
            try:
                conn.request("GET", path)
                return conn.getresponse().status == status
            except OSError:
                return False
            finally:
                conn.close()
        text = self.log_since_start()
        return " ready." in text or "beat: Starting" in text

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log_since_start()[-3000:]}")
            if self._answers():
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready in {timeout} s; see {self.log_path}")

    def signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn's workers, Celery's pool) at once."""
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        self.kill()  # whatever is left of the group


@dataclass
class Cluster:
    configuration: Configuration
    broker_url: str
    sandbox: Node
    tap: RecordingHttpProxy
    balancer: RoundRobinBalancer
    webs: list[Node]
    workers: list[Node]
    beat: Node
    shop: ScriptedReceiver
    nodes: list[Node] = field(default_factory=list)
    logs: Path = Path()

    def assert_running(self) -> None:
        dead = [n.name for n in self.nodes if n.process is None or n.process.poll() is not None]
        assert not dead, f"nodes died: {dead}; logs in {self.logs}"


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def _gunicorn(port: int) -> list[str]:
    return _python(
        "gunicorn", "merchant.wsgi", "--bind", f"{HOST}:{port}", "--worker-class", "gthread",
        "--workers", "1", "--threads", "4", "--timeout", "60", "--graceful-timeout", "3",
        "--error-logfile", "-", *_no_control_socket(),
    )  # fmt: skip


def _worker(name: str) -> list[str]:
    # The Procfile's worker line (every queue), without gossip and mingle for a quick start.
    return _python(
        "celery", "--app", "merchant", "worker", "--loglevel", "INFO", "--concurrency", "2",
        "--hostname", f"{name}@%h", "-Q", ",".join(queues.ALL),
        "--without-gossip", "--without-mingle",
    )  # fmt: skip


@contextlib.contextmanager
def private_broker(configuration: Configuration) -> Iterator[str]:
    """The configuration's broker URL, empty at the start and emptied at the end."""
    if configuration.broker == "redis":
        import redis

        url = f"{REDIS_URL}{configuration.redis_db}"
        client = redis.Redis.from_url(url)
        client.flushdb()  # this test's own database number
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
        return
    if shutil.which("rabbitmqctl") and _rabbitmqctl("add_vhost", RABBITMQ_VHOST, check=False):
        _rabbitmqctl("set_permissions", "-p", RABBITMQ_VHOST, "guest", ".*", ".*", ".*")
        try:
            yield RABBITMQ_URL + RABBITMQ_VHOST
        finally:
            _rabbitmqctl("delete_vhost", RABBITMQ_VHOST, check=False)
        return
    # The machine's default vhost, shared: our queues emptied before and after.
    _purge(RABBITMQ_URL)
    try:
        yield RABBITMQ_URL
    finally:
        _purge(RABBITMQ_URL)


def _rabbitmqctl(*args: str, check: bool = True) -> bool:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=60, check=False)
    if check and done.returncode:
        raise AssertionError(f"rabbitmqctl {' '.join(args)}: {done.stderr.decode()[-500:]}")
    return done.returncode == 0


def _purge(url: str) -> None:
    from tests.conftest import celery_app_on

    app = celery_app_on(url)
    with app.connection_for_write() as conn:
        for name in queues.ALL:
            with contextlib.suppress(Exception):
                conn.default_channel.queue_purge(name)


def _shared_env(cluster_dir: Path, broker_url: str, database: str, **extra: str) -> dict[str, str]:
    return service_env(
        DJANGO_SETTINGS_MODULE="tests.cluster.service_settings",
        DATABASE_URL=database,
        CELERY_BROKER_URL=broker_url,
        LOG_LEVEL="INFO",
        **QUICK_TIMINGS,
        **extra,
    )


def _node_env(base: dict[str, str], var_dir: Path) -> dict[str, str]:
    """A machine of its own: VAR_DIR (schedule, cache, metrics) apart from the others'."""
    var_dir.mkdir(parents=True, exist_ok=True)
    return {**base, "VAR_DIR": str(var_dir), "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "prom")}


def _build(configuration: Configuration, directory: Path, broker_url: str, db_url: str) -> Cluster:
    shop = ScriptedReceiver([(200, b"ok", 0.0)], path="/shop/webhooks").start()
    sandbox_port = free_port()
    sandbox_url = f"http://{HOST}:{sandbox_port}"
    tap = RecordingHttpProxy(sandbox_port).start()
    web_ports = [free_port(), free_port()]
    balancer = RoundRobinBalancer([(HOST, port) for port in web_ports]).start()
    base = _shared_env(
        directory,
        broker_url,
        db_url,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),  # one key for every node
        PUBLIC_BASE_URL=balancer.url,
        GATEWAY_API_URL=f"{tap.url}/sandbox/api/",
        GATEWAY_PAYMENT_HOST=f"{sandbox_url}/sandbox",
        SHOP_WEBHOOK_URL=shop.url,
        SHOP_WEBHOOK_SECRET=SHOP_WEBHOOK_SECRET,
        SANDBOX_URL=sandbox_url,  # not served by the web nodes
        **({"DATABASE_POOLER": "transaction"} if configuration.pooler else {}),
    )
    sandbox = _sandbox_node(base, directory, sandbox_port)
    webs = [
        Node(f"web-{n}", _gunicorn(port), _node_env(base, directory / f"web-{n}"),
             directory / f"web-{n}.log", url=f"http://{HOST}:{port}")
        for n, port in zip("ab", web_ports, strict=True)
    ]  # fmt: skip
    workers = [
        Node(f"worker-{n}", _worker(f"cluster-{n}"), _node_env(base, directory / f"worker-{n}"),
             directory / f"worker-{n}.log")
        for n in "ab"
    ]  # fmt: skip
    beat_var = directory / "beat"
    beat = Node(
        "beat",
        _python("celery", "--app", "merchant", "beat", "--loglevel", "INFO",
                "--schedule", str(beat_var / "celerybeat-schedule")),
        _node_env(base, beat_var),
        directory / "beat.log",
    )  # fmt: skip
    nodes = [sandbox, *webs, *workers, beat]
    return Cluster(configuration, broker_url, sandbox, tap, balancer, webs, workers, beat, shop,
                   nodes, directory)  # fmt: skip


def _sandbox_node(base: dict[str, str], directory: Path, port: int) -> Node:
    """The gateway: its own machine, as `make run` starts it (the Procfile's sandbox line,
    settings sandbox.site_settings), on PostgreSQL directly, whatever the service uses."""
    url = f"http://{HOST}:{port}"
    env = {
        **base,
        "DJANGO_SETTINGS_MODULE": "sandbox.site_settings",
        "DATABASE_URL": database_url(),
        "SANDBOX_ENABLED": "1",
        "PUBLIC_BASE_URL": url,
        "SANDBOX_URL": url,
    }
    env.pop("DATABASE_POOLER", None)
    node = Node(
        "sandbox", _gunicorn(port), _node_env(env, directory / "sandbox"),
        directory / "sandbox.log", url=url,
    )  # fmt: skip
    node.probe = ("/sandbox/", 200)  # it serves the sandbox only
    return node


@pytest.fixture
def start_cluster(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """`start_cluster(configuration)`: every node started and ready; all stopped afterwards."""
    require_postgres("several machines share one database server (SQLite serves one machine)")
    with contextlib.ExitStack() as stack:

        def start(configuration: Configuration) -> Cluster:
            broker_url = stack.enter_context(private_broker(configuration))
            db_url = database_url()
            if configuration.pooler:
                db_url = stack.enter_context(_pgbouncer(tmp_path))
            cluster = _build(configuration, tmp_path, broker_url, db_url)
            stack.callback(_stop, cluster)
            for node in cluster.nodes:
                node.start()
            for node in cluster.nodes:
                node.wait_ready()
            return cluster

        yield start


@contextlib.contextmanager
def _pgbouncer(tmp_path: Path) -> Iterator[str]:
    from tests.faults.test_pgbouncer import PgBouncer

    if shutil.which("pgbouncer") is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    directory = tmp_path / "pgbouncer"
    directory.mkdir()
    # Enough server connections for every creation waiting on the gateway's call lock (each
    # waits in a transaction) plus the IPNs, sweeps and deliveries going on meanwhile.
    bouncer = PgBouncer(directory, pool_size=24)
    try:
        yield bouncer.url
    finally:
        bouncer.stop()


def _stop(cluster: Cluster) -> None:
    for node in reversed(cluster.nodes):
        node.stop()
    cluster.balancer.stop()
    cluster.tap.stop()
    cluster.shop.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARIES:
        terminalreporter.section("cluster runs")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
