"""Two hubs on one PostgreSQL database (DESIGN §13): each sees and acts on what happens on the other.

Real hubs (uvicorn on port 0, in this loop) on a fresh schema of the real PostgreSQL, real
``websockets`` agents and dashboards.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import httpx
import pytest

from tests.agentd import eventually
from tests.agents import connect_agent, next_frame, send, ui_feed
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.integration.test_credential_lifecycle import enroll
from tests.pg import PG_URL
from tests.timing import t

FAST = {"hub_heartbeat": 0.5, "hub_lost_after": 3.0, "ping_interval": 1.0, "ping_timeout": 1.0}


@pytest.fixture
async def hubs(pg_url: str, hub_factory: HubFactory) -> tuple[RunningHub, RunningHub]:
    a = await hub_factory(db=pg_url, **FAST)
    b = await hub_factory(db=pg_url, **FAST)
    return a, b


def client(hub: RunningHub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token})


async def device(hub: RunningHub, device_id: str) -> dict[str, Any]:
    async with client(hub) as api:
        answer = await api.get(f"/devices/{device_id}")
    return dict(answer.json()) if answer.status_code == 200 else {}


async def test_command_queued_on_b_reaches_the_agent_on_a_and_its_ack_shows_on_b(
    hubs: tuple[RunningHub, RunningHub],
) -> None:
    a, b = hubs
    ws = await connect_agent(a, "cross-1")
    async with client(b) as api:
        queued = await api.post("/devices/cross-1/commands", json={"command": "ping"})
        assert queued.status_code == 200, queued.text
        command_id = queued.json()["id"]
        frame = await next_frame(ws, "command", within=5)
        assert frame["id"] == command_id and frame["command"] == "ping"
        await send(ws, {"type": "ack", "id": command_id, "success": True, "message": "pong"})

        async def acked() -> bool:
            answer = await api.get(f"/devices/cross-1/commands/{command_id}")
            return bool(answer.json()["status"] == "acked")

        await eventually(acked, what="the ack, read on hub B")
    await ws.close()


async def test_dashboard_on_b_sees_presence_and_samples_of_an_agent_on_a(
    hubs: tuple[RunningHub, RunningHub],
) -> None:
    a, b = hubs
    async with ui_feed(b) as (feed, snapshot):
        assert snapshot["type"] == "snapshot"
        ws = await connect_agent(a, "seen-on-b")
        online = await _ui_event(feed, lambda e: e.get("type") == "presence" and e.get("online") is True)
        assert online["device_id"] == "seen-on-b" and online["reason"] == "connected"
        await send(ws, {"type": "metrics", "ts": time.time(), "cpu": 42.0, "ram": 1.0, "disk": 2.0})
        sample = await _ui_event(
            feed, lambda e: e.get("type") == "sample" and e.get("device_id") == "seen-on-b"
        )
        assert sample["cpu"] == 42.0
        await ws.close()
        offline = await _ui_event(feed, lambda e: e.get("type") == "presence" and e.get("online") is False)
        assert offline["device_id"] == "seen-on-b" and offline["reason"] == "disconnected"
    assert (await device(b, "seen-on-b"))["online"] is False


async def test_the_device_connecting_to_b_closes_its_socket_on_a_with_4000(
    hubs: tuple[RunningHub, RunningHub],
) -> None:
    a, b = hubs
    old = await connect_agent(a, "mover")
    new = await connect_agent(b, "mover")
    async with asyncio.timeout(t(5)):
        await old.wait_closed()
    assert old.close_code == 4000, old.close_code
    # A's socket closing recorded nothing: the device stays online, held by B.
    await eventually(lambda: _no_session(a, "mover"), what="hub A forgot the socket")
    state = await device(a, "mover")
    assert state["online"] is True and state["presence_reason"] == "connected"
    await new.close()


async def test_revoking_on_b_closes_the_socket_held_on_a_within_a_second(
    hubs: tuple[RunningHub, RunningHub],
) -> None:
    a, b = hubs
    async with client(a) as api_a, client(b) as api_b:
        secret = await enroll(api_a, "revoked-across")
        ws = await connect_agent(a, "revoked-across", token=secret)
        started = time.perf_counter()
        assert (await api_b.post("/devices/revoked-across/revoke")).status_code == 200
        async with asyncio.timeout(t(5)):
            await ws.wait_closed()
        took = time.perf_counter() - started
    assert ws.close_code == 4001, ws.close_code
    assert took < t(1.0), took


async def test_listener_cut_by_the_server_recovers_and_misses_nothing(
    hubs: tuple[RunningHub, RunningHub],
) -> None:
    """pg_terminate_backend on every connection of hub A; a command queued on B meanwhile still arrives."""
    a, b = hubs
    ws = await connect_agent(a, "cut-off")
    cluster_a = a.hub.cluster
    assert cluster_a.hub_id is not None
    conn = await asyncpg.connect(PG_URL)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            f"monitor-hub {cluster_a.hub_id}",
        )
    finally:
        await conn.close()
    assert killed >= 2  # the listener and the writer, at least
    async with client(b) as api:
        queued = await api.post("/devices/cut-off/commands", json={"command": "echo", "args": {"n": 1}})
        assert queued.status_code == 200, queued.text
    frame = await next_frame(ws, "command", within=10)
    assert frame["id"] == queued.json()["id"]
    await ws.close()


async def _no_session(hub: RunningHub, device_id: str) -> bool:
    return device_id not in hub.hub.sessions


async def _ui_event(feed: Any, match: Any, within: float = 5) -> dict[str, Any]:
    """The next dashboard event ``match`` accepts (events arrive in batches)."""
    async with asyncio.timeout(t(within)):
        while True:
            message = json.loads(await feed.recv())
            for event in message.get("events", [message]):
                if match(event):
                    return dict(event)
