"""The mixed run of the cluster test: shops creating orders, payers paying, nodes dying.

- `CLIENTS` API clients create `ORDERS` orders through the balancer, each with an
  Idempotency-Key, retrying with the same key on a connection error, a 5xx, or a 409 whose
  first request is still in progress (its node may be dead);
- as each order is created, a payer acts on it at the sandbox's hosted pages
  (`SCENARIOS`), so the sandbox's IPNs go to the service through the balancer;
- once `KILL_AFTER` of the orders are created, one web node and one worker node are
  SIGKILLed (their whole process groups) and restarted a few seconds later;
- then IPN bodies the service already acknowledged are sent again, each to both web nodes
  at the same moment.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from django.db import connections

from payments.gateway import signing
from sandbox.models import IpnDelivery, SandboxPayment
from sandbox.services import IPN_USER_AGENT
from tests.cluster.conftest import Cluster

ORDERS = 36
CLIENTS = 6
PAYERS = 3
KILL_AFTER = 0.3  # of the orders created
DOWN_SECONDS = 3.0
CLIENT_DEADLINE_SECONDS = 60.0
STARTUP_BUDGET = 90.0  # for the killed nodes to come back
DUPLICATED_IPNS = 16  # acknowledged IPN bodies sent again, each to both web nodes at once
# What the payer does with order i: SCENARIOS[i % len(SCENARIOS)].
SCENARIOS = ("paid", "confirming_then_paid", "confirming", "cancelled", "untouched")
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def amount_int(index: int) -> int:
    return (10 + index) * 1_000_000  # 0.10 BTC and up: BTC orders, 1E8 units


@dataclass
class Created:
    index: int
    reference: str
    order_id: str
    transaction: str
    answers: list[str] = field(default_factory=list)  # each attempt's outcome, in order


@dataclass
class RunLog:
    created: dict[int, Created] = field(default_factory=dict)
    client_errors: list[str] = field(default_factory=list)
    payer_errors: list[str] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    duplicate_answers: Counter[str] = field(default_factory=Counter)
    duplicated_bodies: list[bytes] = field(default_factory=list)
    slow_to_settle: list[str] = field(default_factory=list)  # outstanding 5 s into settling

    def retries(self) -> Counter[str]:
        return Counter(a for c in self.created.values() for a in c.answers[:-1])


class MixedRun:
    def __init__(self, cluster: Cluster, token: str) -> None:
        self.cluster = cluster
        self.token = token
        self.log = RunLog()
        self._lock = threading.Lock()
        self._enough_created = threading.Event()

    def execute(self) -> RunLog:
        chaos = threading.Thread(target=self._chaos, daemon=True)
        chaos.start()
        with ThreadPoolExecutor(PAYERS) as payers, ThreadPoolExecutor(CLIENTS) as clients:
            work: list[Future[Any]] = [
                clients.submit(self._client, c, payers) for c in range(CLIENTS)
            ]
            for done in work:
                done.result()
        chaos.join(timeout=STARTUP_BUDGET)
        assert not chaos.is_alive(), "the killed nodes did not come back"
        self._send_duplicates()
        return self.log

    # --- shops -------------------------------------------------------------------

    def _client(self, client: int, payers: ThreadPoolExecutor) -> None:
        try:
            for index in range(client, ORDERS, CLIENTS):
                created = self._create(index)
                if created is None:
                    continue
                with self._lock:
                    self.log.created[index] = created
                    if len(self.log.created) >= ORDERS * KILL_AFTER:
                        self._enough_created.set()
                payers.submit(self._pay, created)
        finally:
            connections.close_all()

    def _create(self, index: int) -> Created | None:
        reference = f"cluster-{index:03d}"
        body = {"reference": reference, "amount_int": amount_int(index), "currency": "BTC"}
        headers = {"Authorization": f"Token {self.token}", "Idempotency-Key": f"key-{reference}"}
        answers: list[str] = []
        deadline = time.monotonic() + CLIENT_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            try:
                answer = requests.post(
                    f"{self.cluster.balancer.url}/api/orders/", json=body, headers=headers,
                    timeout=30,
                )  # fmt: skip
            except requests.RequestException as exc:
                answers.append(type(exc).__name__)
                time.sleep(0.3)
                continue
            answers.append(str(answer.status_code))
            if answer.status_code in (200, 201):
                data = answer.json()
                return Created(index, reference, data["id"], data["transaction"], answers)
            if answer.status_code < 500 and answer.status_code != 409:
                break
            # A node died under the request (5xx from the balancer's other side), or its
            # first try is still running (409): the same key again, a little later.
            time.sleep(1.0 if answer.status_code == 409 else 0.3)
        with self._lock:
            self.log.client_errors.append(f"{reference}: {answers} (last: {answer.text[:300]})")
        return None

    # --- payers --------------------------------------------------------------------

    def _pay(self, created: Created) -> None:
        scenario = SCENARIOS[created.index % len(SCENARIOS)]
        try:
            if scenario == "paid":
                self._sandbox_form(created.transaction, "/pay", {"method": "account"})
            elif scenario in ("confirming", "confirming_then_paid"):
                form = {"method": "bitcoin", "amount_choice": "full"}
                self._sandbox_form(created.transaction, "/pay", form)
                if scenario == "confirming_then_paid":
                    payment = SandboxPayment.objects.get(order__transaction=created.transaction)
                    self._sandbox_form(created.transaction, f"/confirm/{payment.payment_id}", {})
            elif scenario == "cancelled":
                self._sandbox_form(created.transaction, "/cancel", {})
        except Exception as exc:  # reported and asserted by the test
            with self._lock:
                self.log.payer_errors.append(f"{created.reference} {scenario}: {exc!r}")
        finally:
            connections.close_all()

    def _sandbox_form(self, transaction: str, action: str, form: dict[str, str]) -> None:
        """Submit one of the sandbox's hosted payment page forms, as a payer's browser does."""
        page_url = f"{self.cluster.sandbox.url}/sandbox/pay/{transaction}"
        with requests.Session() as browser:
            page = browser.get(page_url, timeout=30)
            token = _CSRF.search(page.text)
            assert token, f"no form on {page_url}: {page.status_code}"
            answer = browser.post(
                page_url + action, data={**form, "csrfmiddlewaretoken": token.group(1)},
                allow_redirects=False, timeout=30,
            )  # fmt: skip
        assert answer.status_code == 303, f"{action}: {answer.status_code} {answer.text[:300]}"

    # --- the kills -----------------------------------------------------------------

    def _chaos(self) -> None:
        """SIGKILL web-a and worker-a mid-run; bring them back on the same port and VAR_DIR."""
        if not self._enough_created.wait(timeout=CLIENT_DEADLINE_SECONDS * 2):
            return
        victims = [self.cluster.webs[0], self.cluster.workers[0]]
        for node in victims:
            node.kill()
            self.log.kills.append(f"{node.name} at {len(self.log.created)} orders")
        time.sleep(DOWN_SECONDS)
        for node in victims:
            node.start()
        for node in victims:
            node.wait_ready()

    # --- duplicate IPNs ----------------------------------------------------------------

    def _send_duplicates(self) -> None:
        """Acknowledged IPN bodies again, each to both web nodes directly at the same moment."""
        deliveries = list(
            IpnDelivery.objects.filter(delivered_at__isnull=False)
            .select_related("order__account")
            .order_by("pk")[:DUPLICATED_IPNS]
        )
        sends = [(d, web.url) for d in deliveries for web in self.cluster.webs]
        together = threading.Barrier(len(sends)) if sends else None

        def send(delivery: IpnDelivery, url: str) -> str:
            body = delivery.body_bytes
            headers = {
                "Rest-Key": str(delivery.order.account.api_key),
                "Rest-Sign": signing.sign(body, delivery.order.account.secret),
                "User-Agent": IPN_USER_AGENT,
                "Content-Type": "application/x-www-form-urlencoded",
            }
            assert together is not None
            together.wait(timeout=30)
            try:
                answer = requests.post(f"{url}/payments/ipn/", data=body, headers=headers,
                                       timeout=30)  # fmt: skip
            except requests.RequestException as exc:
                return type(exc).__name__
            return f"{answer.status_code} {answer.content[:20]!r}"

        with ThreadPoolExecutor(max(len(sends), 1)) as pool:
            answers = list(pool.map(lambda pair: send(*pair), sends))
        self.log.duplicate_answers.update(answers)
        self.log.duplicated_bodies = [d.body_bytes for d in deliveries]
