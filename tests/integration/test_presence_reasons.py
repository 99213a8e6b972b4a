"""Why a device went offline: an agent restarting itself is not the hub shutting down."""

from __future__ import annotations

import httpx

from tests.agentd import eventually
from tests.agents import connect_agent
from tests.hubs import RunningHub


async def offline_reason(api: httpx.AsyncClient, device_id: str) -> str | None:
    device = (await api.get(f"/devices/{device_id}")).json()
    return None if device["online"] else str(device["offline_reason"])


async def test_agent_closing_with_1012_is_an_agent_restart(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """An agent that closes with 1012 (re-executing itself) goes offline as ``agent_restart``."""
    ws = await connect_agent(hub, "restarting")
    await ws.close(1012, "agent restart")
    assert await eventually(lambda: offline_reason(api, "restarting"), what="offline") == "agent_restart"


async def test_hub_shutdown_is_recorded_as_hub_shutdown(hub: RunningHub) -> None:
    """Sockets the hub closes because it stops are recorded as ``hub_shutdown``, not as agent restarts."""
    ws = await connect_agent(hub, "left-behind")
    await hub.stop()
    await ws.wait_closed()
    await hub.start()
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        events = (await api.get("/devices/left-behind/events")).json()["events"]
    assert [e["reason"] for e in events if not e["online"]] == ["hub_shutdown"]
