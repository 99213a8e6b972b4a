"""Scenario 1, push latency: commands enqueued over REST reach WebSocket agents vs polling agents.

N virtual agents hold WebSockets; a commander posts 10 commands/s to random ones and records when
each REST request was sent and when its call returned; the agent records when the command frame
arrived. The headline is from the request being sent (the command's commit included: what an
operator waits); "REST return -> frame" is secondary, near zero by construction (the hub pushes
before it answers, so many frames arrive before the response and count as 0). In the same run, polling
agents (the agent's own HTTP transport, polling ``/commands/next`` every 1 s and every 10 s) get
commands too: their latency is what the original design paid.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    TOKEN,
    HubProcess,
    Scale,
    fleet_for,
    median_of,
    running_fleet,
    running_hub,
    summary_ms,
    wait_for,
)
from monitor_agent import __version__
from monitor_agent.agent import Agent, Identity
from monitor_agent.http_transport import HttpSettings, HttpTransport
from monitor_agent.journal import MemoryJournal
from monitor_agent.simulator import SyntheticHost
from monitor_agent.spool import MemorySpool

RATE = 10.0  # commands per second over REST, as the issue asks


class Clock:
    """Arrival times by command id, filled by the agents' hooks."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.waiters: dict[int, asyncio.Future[float]] = {}

    def hook(self, device_id: str, command_id: int, command: str) -> None:
        now = time.perf_counter()
        self.arrived.setdefault(command_id, now)
        waiter = self.waiters.pop(command_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)


class PollingAgent(Agent):
    """A real agent on the HTTP transport whose command arrivals are timed."""

    clock: Clock

    async def handle_command(self, command_id: int, command: str, args: Mapping[str, Any] | None) -> None:
        self.clock.hook(self.identity.device_id, command_id, command)
        await super().handle_command(command_id, command, args)


def _poller(
    hub: HubProcess, device_id: str, every: float, clock: Clock, seed: int
) -> tuple[Agent, HttpTransport]:
    agent = PollingAgent(
        identity=Identity(device_id, device_id, "simulated", __version__),
        sample_source=SyntheticHost(random.Random(seed)).sample,
        spool=MemorySpool(100),
        journal=MemoryJournal(),
        interval=every,
    )
    agent.clock = clock
    return agent, HttpTransport(HttpSettings(base_url=hub.http_url, token=TOKEN, poll_interval=every))


async def _post(client: httpx.AsyncClient, device_id: str) -> tuple[int, float, float]:
    """Enqueue one ping; returns (id, time the request started, time the REST call returned)."""
    sent = time.perf_counter()
    response = await client.post(f"/devices/{device_id}/commands", json={"command": "ping"})
    returned = time.perf_counter()
    response.raise_for_status()
    return int(response.json()["id"]), sent, returned


async def _push_window(
    client: httpx.AsyncClient, ids: list[str], clock: Clock, seconds: float, rng: random.Random
) -> dict[str, Any]:
    """10 commands/s to random WebSocket agents for ``seconds``; latencies after every arrival."""
    posted: list[tuple[int, float, float]] = []
    start = time.perf_counter()
    for n in range(int(seconds * RATE)):
        await asyncio.sleep(max(0.0, start + n / RATE - time.perf_counter()))
        posted.append(await _post(client, rng.choice(ids)))
    await wait_for(lambda: all(cid in clock.arrived for cid, _, _ in posted), 30, "every push arrived")
    after_return = [max(0.0, clock.arrived[cid] - returned) for cid, _, returned in posted]
    from_request = [clock.arrived[cid] - sent for cid, sent, _ in posted]
    early = sum(1 for cid, _, returned in posted if clock.arrived[cid] <= returned)
    return {
        "after_return": summary_ms(after_return),
        "from_request": summary_ms(from_request),
        "arrived_before_return": early,
    }


async def _poll_baseline(
    client: httpx.AsyncClient,
    ids: list[str],
    clock: Clock,
    every: float,
    until: float,
    rng: random.Random,
) -> list[float]:
    """Each poller gets one command at a random moment, waits for it, and again until ``until``."""
    latencies: list[float] = []

    async def one(device_id: str) -> None:
        while time.perf_counter() + every * 2 < until:
            await asyncio.sleep(rng.uniform(0, every))
            cid, _, returned = await _post(client, device_id)
            waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            clock.waiters[cid] = waiter
            if cid in clock.arrived:
                clock.waiters.pop(cid)
                waiter.set_result(clock.arrived[cid])
            arrived = await asyncio.wait_for(waiter, every * 3 + 10)
            latencies.append(max(0.0, arrived - returned))

    await asyncio.gather(*(one(d) for d in ids))
    return latencies


async def measure(folder: Path, agents: int, scale: Scale) -> dict[str, Any]:
    clock = Clock()
    pollers_each = scale.pick(3, 20)
    window = scale.pick(2.0, 20.0)
    rng = random.Random(5)
    async with running_hub(folder) as hub:
        fleet = fleet_for(hub, agents, on_command=clock.hook, ramp=scale.pick(0.5, agents / 500))
        pollers = [_poller(hub, f"poll1s-{i:03d}", 1.0, clock, i) for i in range(pollers_each)]
        pollers += [_poller(hub, f"poll10s-{i:03d}", 10.0, clock, 100 + i) for i in range(pollers_each)]
        async with running_fleet(fleet):
            poll_tasks = [asyncio.get_running_loop().create_task(a.run(t)) for a, t in pollers]
            connect_s = await wait_for(lambda: fleet.connected() == agents, 300, f"{agents} agents online")
            ids = [m.agent.identity.device_id for m in fleet.members]
            async with httpx.AsyncClient(
                base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}, timeout=30
            ) as client:
                baseline_until = time.perf_counter() + max(window * scale.runs, scale.pick(25.0, 60.0))
                baselines = asyncio.gather(
                    _poll_baseline(
                        client,
                        [a.identity.device_id for a, _ in pollers[:pollers_each]],
                        clock,
                        1.0,
                        baseline_until,
                        rng,
                    ),
                    _poll_baseline(
                        client,
                        [a.identity.device_id for a, _ in pollers[pollers_each:]],
                        clock,
                        10.0,
                        baseline_until,
                        rng,
                    ),
                )
                windows = [await _push_window(client, ids, clock, window, rng) for _ in range(scale.runs)]
                poll_1s, poll_10s = await baselines
            still_online = fleet.connected()
            for agent, _ in pollers:
                agent.stop()
            await asyncio.gather(*poll_tasks, return_exceptions=True)
    runs = [
        {
            "p50_ms": w["from_request"]["p50_ms"],
            "p99_ms": w["from_request"]["p99_ms"],
            "max_ms": w["from_request"]["max_ms"],
            "after_return_p50_ms": w["after_return"]["p50_ms"],
            "after_return_p99_ms": w["after_return"]["p99_ms"],
            "after_return_max_ms": w["after_return"]["max_ms"],
            "n": w["from_request"]["n"],
            "arrived_before_return": w["arrived_before_return"],
        }
        for w in windows
    ]
    result: dict[str, Any] = {
        "agents": agents,
        "connect_seconds": round(connect_s, 2),
        "online_at_end": still_online,
        "window_seconds": window,
        "runs": runs,
        "push_from_request": {k: median_of(runs, k) for k in ("p50_ms", "p99_ms", "max_ms")},
        "push_after_return": {
            k.removeprefix("after_return_"): median_of(runs, k)
            for k in ("after_return_p50_ms", "after_return_p99_ms", "after_return_max_ms")
        },
        "poll_1s": summary_ms(poll_1s),
        "poll_10s": summary_ms(poll_10s),
    }
    p99 = result["push_from_request"]["p99_ms"]
    result["ratio_vs_poll_1s_p99"] = round(result["poll_1s"]["p99_ms"] / p99, 1) if p99 else None
    result["ratio_vs_poll_1s_p50"] = (
        round(result["poll_1s"]["p50_ms"] / result["push_from_request"]["p50_ms"], 1)
        if result["push_from_request"]["p50_ms"]
        else None
    )
    return result


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    sizes = scale.pick([20], [1000, 5000, 10000])
    results = [await measure(folder / f"n{n}", n, scale) for n in sizes]
    largest = results[-1]
    n = f"{largest['agents']:,}"
    return {
        "scenario": "push",
        "sizes": results,
        "targets": {
            f"push p99 at {n} agents, REST request sent -> frame (ms; headline)": {
                "target": "<= 10",
                "achieved": largest["push_from_request"]["p99_ms"],
                "met": largest["push_from_request"]["p99_ms"] <= 10,
            },
            f"push p99 at {n} agents, REST return -> frame (ms; secondary, pushed before the answer)": {
                "target": "<= 25",
                "achieved": largest["push_after_return"]["p99_ms"],
                "met": largest["push_after_return"]["p99_ms"] <= 25,
            },
            "1 s polling p99 / push p99 (push from the request)": {
                "target": ">= 20x",
                "achieved": largest["ratio_vs_poll_1s_p99"],
                "met": (largest["ratio_vs_poll_1s_p99"] or 0) >= 20,
            },
        },
    }
