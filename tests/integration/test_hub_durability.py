"""A command the REST call confirmed survives a SIGKILL of the hub process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.agents import connect_agent, next_frame, send
from tests.hubs import RunningHub
from tests.processes import HubProcess, free_port
from tests.timing import t

TOKEN = "durability-token-93b1"


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub started as its own process with ``python -m monitor_server``."""
    process = HubProcess(tmp_path / "monitor.db", free_port(), TOKEN)
    yield process
    process.stop()


async def test_sigkill_after_enqueue_then_delivered(hub_process: HubProcess) -> None:
    """Enqueue returns, the hub is killed with SIGKILL, restarted, and the agent still gets the command."""
    await hub_process.start()
    headers = {"X-Auth-Token": TOKEN}
    async with httpx.AsyncClient(base_url=hub_process.http_url, headers=headers) as api:
        await api.post("/ingest", json={"device_id": "durable", "cpu": 1.0})
        body = {"command": "echo", "args": {"n": 7}}
        queued = (await api.post("/devices/durable/commands", json=body)).json()
        hub_process.kill()
        await hub_process.start()
        devices = (await api.get("/devices")).json()
    assert [d["device_id"] for d in devices] == ["durable"]
    async with connect(hub_process.ws_url, additional_headers=headers, open_timeout=t(5)) as ws:
        await send(ws, {"type": "hello", "protocol": 1, "device_id": "durable"})
        await next_frame(ws, "welcome")
        frame = await next_frame(ws, "command")
    assert frame["id"] == queued["id"] and frame["args"] == {"n": 7}


async def test_sigkill_leaves_no_ws_device_online(hub_process: HubProcess) -> None:
    """A device connected when the hub was killed is offline (hub_restart) after it comes back."""
    await hub_process.start()
    headers = {"X-Auth-Token": TOKEN}
    ws = await connect(hub_process.ws_url, additional_headers=headers, open_timeout=t(5))
    await send(ws, {"type": "hello", "protocol": 1, "device_id": "ghost"})
    await next_frame(ws, "welcome")
    hub_process.kill()
    await hub_process.start()
    async with httpx.AsyncClient(base_url=hub_process.http_url, headers=headers) as api:
        device = (await api.get("/devices/ghost")).json()
    assert device["online"] is False and device["offline_reason"] == "hub_restart"
    ws.transport.abort()


async def test_samples_submitted_before_shutdown_are_stored(hub: RunningHub) -> None:
    """Metrics frames received right before a clean shutdown are all in the database after it."""
    async with await connect_agent(hub, "burst") as ws:
        now = time.time()  # recent: retention at the restart must not delete them
        for i in range(500):
            await send(ws, {"type": "metrics", "cpu": 1.0, "ts": now - i})
        await send(ws, {"type": "ack", "id": 999999, "success": True})  # answered after the frames
        await next_frame(ws, "error")
        await hub.stop()
    await hub.start()
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        samples = (await api.get("/devices/burst/metrics", params={"limit": 1000})).json()["samples"]
    assert len(samples) == 500


async def test_replayed_batch_is_stored_once(hub: RunningHub) -> None:
    """The same samples sent twice (a replay after a lost confirmation) are stored once."""
    now = time.time()
    batch = {"type": "metrics_batch", "samples": [{"ts": now - i, "cpu": float(i)} for i in range(10)]}
    async with await connect_agent(hub, "replayer") as ws:
        await send(ws, batch)
        await send(ws, batch)
    await hub.stop()  # flushes every submitted sample
    await hub.start()
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        samples = (await api.get("/devices/replayer/metrics")).json()["samples"]
    assert sorted(s["cpu"] for s in samples) == [float(i) for i in range(10)]
