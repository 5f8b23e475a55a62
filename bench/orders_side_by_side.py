"""orders_cpu's figure against the floor: order creation and the floor served side by side.

Two servers of the same configuration (the Procfile's web process), one
creating orders and one serving the floor (`/bench/orders-floor/`), loaded at
the same time for the same seconds, each measured over that interval. Phases
run one after the other (minimal, orders, floor) saw this machine's speed drift
by 20-40 % between them, more than the difference the figure is after; side
by side, both servers meet the same drift. The servers swap roles every round,
so that neither's process layout counts for one side only. The ratio pools the
rounds (CPU over requests); `per_round` shows their spread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.urls import reverse

from bench.common import Phase, combine, measure_side_by_side, require_success, wait_for_idle
from bench.load import Expect, Item, LoadGenerator, LoadResult
from bench.servers import HOST, Infrastructure, Server, log

# References of their own (bench-5000000...), apart from the rounds run in turns.
FIRST_REFERENCE = 5_000_000


@dataclass
class SideBySide:
    """The rounds of order creation and floor served at once by two servers."""

    name: str
    order_body: Callable[[Server, int], bytes]  # the benchmark's JSON body of an order
    headers: tuple[tuple[str, str], ...]
    floor_path: str
    made: int = FIRST_REFERENCE
    orders: list[Phase] = field(default_factory=list)
    floor: list[Phase] = field(default_factory=list)

    def items(self, server: Server, path: str, n: int) -> list[Item]:
        first, self.made = self.made, self.made + n
        return [
            Item("POST", path, self.order_body(server, i), self.headers)
            for i in range(first, self.made)
        ]

    def run_round(
        self, index: int, pair: list[tuple[Server, LoadGenerator]], seconds: float
    ) -> None:
        (order_server, order_gen), (floor_server, floor_gen) = pair
        # Enough items for the seconds at any rate this machine reaches; the rest go unsent.
        enough = int(seconds * 400)
        send = partial(_send, seconds=seconds)
        runs = {
            "order_create": (
                order_server,
                partial(send, order_gen, self.items(order_server, reverse("api-orders"), enough)),
            ),
            "floor": (
                floor_server,
                partial(send, floor_gen, self.items(floor_server, self.floor_path, enough)),
            ),
        }
        wait_for_idle()
        phases = measure_side_by_side(f"side_by_side[{index}]", runs)
        self.orders.append(phases["order_create"])
        self.floor.append(phases["floor"])
        ratio = _ratio(phases["order_create"], phases["floor"])
        log(
            f"{self.name}: side by side[{index}]: order {_ms(phases['order_create'])} ms, "
            f"floor {_ms(phases['floor'])} ms per request ({order_server.name} / "
            f"{floor_server.name}): {ratio:.3f}"
        )

    def summary(self) -> dict[str, Any]:
        orders, floor = combine("order_create", self.orders), combine("floor", self.floor)
        return {
            "what": "order creation and the floor, each on its own server of the same "
            "configuration, loaded at the same time (2 connections each); the servers swap "
            "roles every round",
            "rounds": len(self.orders),
            "order_create": orders.summary(),
            "floor": floor.summary(),
            "order_create_to_floor": round(_ratio(orders, floor), 3),
            "per_round": [
                round(_ratio(o, f), 3) for o, f in zip(self.orders, self.floor, strict=True)
            ],
        }


def side_by_side(
    infra: Infrastructure,
    *,
    rounds: SideBySide,
    service: Server,
    start_second: Callable[[], Server],
    count: int,
    seconds: float,
) -> dict[str, Any]:
    """`count` rounds of `seconds` each on `service` and a second server like it."""
    second = start_second()
    try:
        with (
            LoadGenerator(HOST, service.port, processes=1) as gen_a,
            LoadGenerator(HOST, second.port, processes=1) as gen_b,
        ):
            for server, gen in ((second, gen_b), (service, gen_a)):  # the new one's first calls
                for path in (reverse("api-orders"), rounds.floor_path):
                    items = rounds.items(server, path, 40)
                    require_success(
                        "warm-up", gen.closed_loop(items, connections=2, expect=Expect(201))
                    )
            for index in range(count):
                pair = [(service, gen_a), (second, gen_b)]
                rounds.run_round(index, pair if index % 2 == 0 else pair[::-1], seconds)
    finally:
        infra.stop_server(second)
    return rounds.summary()


def _send(gen: LoadGenerator, items: list[Item], *, seconds: float) -> LoadResult:
    return gen.closed_loop(items, connections=2, expect=Expect(201), duration=seconds)


def _ratio(orders: Phase, floor: Phase) -> float:
    return orders.cpu_per_request_ms() / floor.cpu_per_request_ms()


def _ms(phase: Phase) -> str:
    return f"{phase.cpu_per_request_ms():.2f}"
