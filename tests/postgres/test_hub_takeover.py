"""A hub killed with -9 (DESIGN §13): a survivor marks its devices ``hub_lost``, its agents fail over.

Real hub processes on one PostgreSQL schema, real agent processes given both hubs' URLs.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.agentd import AgentProcess, acked, eventually, spawn_agent
from tests.processes import HubProcess, free_port
from tests.timing import t

TOKEN = "takeover-token-5c1e9a"
AGENTS = 3


async def online_on(api: httpx.AsyncClient, device_id: str) -> bool:
    answer = await api.get(f"/devices/{device_id}")
    return answer.status_code == 200 and bool(answer.json()["online"])


async def reason_of(api: httpx.AsyncClient, device_id: str) -> str | None:
    answer = await api.get(f"/devices/{device_id}")
    body = answer.json()
    return None if body["online"] else str(body["presence_reason"])


async def widest_gap(api: httpx.AsyncClient, device_id: str, since: float) -> tuple[float, int]:
    answer = await api.get(f"/devices/{device_id}/metrics", params={"limit": 10000})
    times = sorted(
        stamp
        for s in answer.json()["samples"]
        if (stamp := datetime.fromisoformat(s["ts"].replace("Z", "+00:00")).timestamp()) >= since
    )
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0), len(times)


def runs_of(agent: AgentProcess, command_id: int) -> int:
    """How many times the agent's log says it ran ``command_id`` (its journal makes that once)."""
    return agent.log().count(f"running command {command_id} ")


async def test_killed_hub_devices_go_hub_lost_and_its_agents_fail_over(tmp_path: Path, pg_url: str) -> None:
    a = HubProcess(tmp_path / "a" / "unused.db", free_port(), TOKEN, MONITOR_DB=pg_url)
    b = HubProcess(tmp_path / "b" / "unused.db", free_port(), TOKEN, MONITOR_DB=pg_url)
    for hub in (a, b):
        Path(hub.log_path).parent.mkdir(parents=True, exist_ok=True)
        await hub.start()
    servers = f"{a.http_url},{b.http_url}"
    agents = [
        spawn_agent(
            a, tmp_path / f"agent{i}", "--server", servers, "--device-id", f"fo-{i}", "--interval", "0.5"
        )
        for i in range(AGENTS)
    ]
    try:
        async with (
            httpx.AsyncClient(base_url=b.http_url, headers={"X-Auth-Token": TOKEN}) as api,
            connect(a.ws_url, additional_headers={"X-Auth-Token": TOKEN}, open_timeout=t(5)) as held,
        ):
            # A device whose socket never comes back: it can only go offline through the takeover.
            await held.send(json.dumps({"type": "hello", "protocol": 1, "device_id": "held-on-a"}))
            assert json.loads(await held.recv())["type"] == "welcome"
            for i in range(AGENTS):
                await eventually(partial(online_on, api, f"fo-{i}"), what=f"fo-{i} online (on hub A)")
            before = [await _enqueue(api, f"fo-{i}", i) for i in range(AGENTS)]
            for i, command_id in enumerate(before):
                await eventually(partial(acked, api, f"fo-{i}", command_id), what="acked before the kill")
            started = time.time()
            a.kill()
            killed = time.monotonic()
            after = [await _enqueue(api, f"fo-{i}", 100 + i) for i in range(AGENTS)]

            async def held_lost() -> bool:
                return await reason_of(api, "held-on-a") == "hub_lost"

            await eventually(held_lost, within=15, what="held-on-a offline (hub_lost) on hub B")
            assert time.monotonic() - killed < t(10.0)
            for i in range(AGENTS):
                await eventually(partial(online_on, api, f"fo-{i}"), within=20, what=f"fo-{i} back on B")
            for i, command_id in enumerate(after):
                await eventually(partial(acked, api, f"fo-{i}", command_id), what="acked after failover")
            for i in range(AGENTS):
                await eventually(partial(_stored_since, api, f"fo-{i}", started + 2), what="samples after")
            for i, agent in enumerate(agents):
                assert all(runs_of(agent, c) == 1 for c in (before[i], after[i])), agent.log()[-2000:]
                gap, count = await widest_gap(api, f"fo-{i}", started - 2)
                assert count >= 8 and gap <= t(1.5), (gap, count)
    finally:
        for agent in agents:
            agent.terminate_all()
        a.stop()
        b.stop()


async def _enqueue(api: httpx.AsyncClient, device_id: str, n: int) -> int:
    answer = await api.post(f"/devices/{device_id}/commands", json={"command": "echo", "args": {"n": n}})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


async def _stored_since(api: httpx.AsyncClient, device_id: str, since: float) -> bool:
    """At least four samples taken after ``since`` are stored (the agent samples every 0.5 s)."""
    return (await widest_gap(api, device_id, since))[1] >= 4
