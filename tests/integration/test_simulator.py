"""The simulator: many virtual agents over real sockets to a real hub, sharing the agent's code."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from monitor_agent.simulator import Fleet, FleetConfig, SyntheticHost
from tests.agentd import eventually
from tests.hubs import RunningHub
from tests.timing import t

COUNT = 20


async def _online(api: httpx.AsyncClient, prefix: str) -> set[str]:
    devices = (await api.get("/devices")).json()
    return {d["device_id"] for d in devices if d["online"] and d["device_id"].startswith(prefix)}


async def _eventually_online(api: httpx.AsyncClient, prefix: str, want: int) -> set[str]:
    async def enough() -> set[str]:
        online = await _online(api, prefix)
        return online if len(online) >= want else set()

    return await eventually(enough, 30, f"{want} {prefix}* devices online")


async def _eventually_offline(api: httpx.AsyncClient, prefix: str) -> None:
    async def none_online() -> bool:
        return not await _online(api, prefix)

    await eventually(none_online, 10, f"every {prefix}* device offline")


def _fleet(hub: RunningHub, **overrides: object) -> Fleet:
    options: dict[str, object] = {
        "url": hub.ws_url,
        "token": hub.token,
        "count": COUNT,
        "interval": 0.5,
        "backoff_base": 0.05,
        "backoff_cap": 0.3,
        "seed": 7,
        **overrides,
    }
    return Fleet(FleetConfig(**options))  # type: ignore[arg-type]


async def test_fleet_online_command_round_trip_and_clean_stop(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Twenty virtual agents come online, one answers an echo over its socket, all go offline on stop."""
    fleet = _fleet(hub)
    running = asyncio.get_running_loop().create_task(fleet.run())
    online = await _eventually_online(api, "sim-", COUNT)
    assert online == {f"sim-{i:05d}" for i in range(COUNT)}

    created = (
        await api.post("/devices/sim-00007/commands", json={"command": "echo", "args": {"hello": "fleet"}})
    ).json()

    async def acked() -> dict[str, Any]:
        detail: dict[str, Any] = (await api.get(f"/devices/sim-00007/commands/{created['id']}")).json()
        return detail if detail["status"] == "acked" else {}

    detail = await eventually(acked, 10, "the echo acknowledged")
    assert detail["success"] is True
    assert "fleet" in detail["message"]

    samples = (await api.get("/devices")).json()
    payload = next(d for d in samples if d["device_id"] == "sim-00003")["last_payload"]
    assert payload is not None and 0 <= payload["cpu"] <= 100

    fleet.stop()
    async with asyncio.timeout(t(15)):
        await running
    await _eventually_offline(api, "sim-")


async def test_fleet_reconnects_after_hub_restart(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """After the hub restarts every virtual agent reconnects by itself with its backoff."""
    fleet = _fleet(hub, count=5, prefix="re-")
    running = asyncio.get_running_loop().create_task(fleet.run())
    await _eventually_online(api, "re-", 5)
    first = sum(m.transport.connections for m in fleet.members)
    await hub.restart()
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as again:
        await _eventually_online(again, "re-", 5)
    assert sum(m.transport.connections for m in fleet.members) >= first + 5
    fleet.stop()
    async with asyncio.timeout(t(15)):
        await running


def test_synthetic_metrics_stay_in_range() -> None:
    """The random walk keeps percentages between 0 and 100 over many samples."""
    import random

    host = SyntheticHost(random.Random(1))
    for _ in range(2000):
        sample = host.sample()
        assert all(0 <= sample[k] <= 100 for k in ("cpu", "ram", "disk"))


async def test_cli_simulate_runs_until_sigint(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """`monitor-agent simulate` connects its agents, reports, and exits 0 on SIGINT with all offline."""
    log = tmp_path / "simulate.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor_agent",
                "simulate",
                "--count",
                "5",
                "--prefix",
                "cli-",
                "--server",
                hub.http_url,
                "--token",
                hub.token,
                "--report-every",
                "0.2",
                "--ramp",
                "0.5",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        await _eventually_online(api, "cli-", 5)

        async def reported() -> bool:
            return "5/5 connected" in log.read_text()

        await eventually(reported, 20, "a '5/5 connected' report")
        proc.send_signal(signal.SIGINT)

        async def exited() -> bool:
            return proc.poll() is not None

        await eventually(exited, 20, "the simulator to exit")
        assert proc.returncode == 0, log.read_text()
        await _eventually_offline(api, "cli-")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
