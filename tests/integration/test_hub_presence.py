"""Presence: who is online, why a device went offline, and how fast the hub notices."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from monitor_server.bus import Subscription
from monitor_server.events import PresenceChanged
from tests.agents import connect_agent, send
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.timing import t


async def presence_event(
    sub: Subscription, device_id: str, online: bool, within: float = 5
) -> dict[str, Any]:
    async with asyncio.timeout(t(within)):
        while True:
            event = await sub.get()
            assert event is not None, "subscription overflowed"
            if isinstance(event, PresenceChanged) and event.device_id == device_id:
                body = event.to_json()  # what the dashboard receives
                if body["online"] is online:
                    return body


async def test_clean_close_is_offline_at_once_with_reason(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Closing the socket publishes an offline event (reason disconnected) and stores it."""
    async with hub.hub.bus.subscribe() as sub:
        ws = await connect_agent(hub, "pres-1")
        online = await presence_event(sub, "pres-1", True)
        assert online["reason"] == "connected" and online["connection"] == "ws"
        await ws.close()
        offline = await presence_event(sub, "pres-1", False)
    assert offline["reason"] == "disconnected"
    device = (await api.get("/devices/pres-1")).json()
    assert device["online"] is False and device["offline_reason"] == "disconnected"
    events = (await api.get("/devices/pres-1/events")).json()["events"]
    assert [(e["online"], e["reason"]) for e in events] == [(False, "disconnected"), (True, "connected")]


async def test_unanswered_pings_mean_timeout(hub_factory: HubFactory) -> None:
    """A peer that stops reading (so never answers pings) goes offline with reason timeout."""
    hub = await hub_factory(ping_interval=0.2, ping_timeout=0.2)
    async with hub.hub.bus.subscribe() as sub:
        ws = await connect_agent(hub, "pres-2", ping_interval=None)
        await presence_event(sub, "pres-2", True)
        ws.transport.pause_reading()  # the hub's pings now go unanswered
        paused = time.perf_counter()
        offline = await presence_event(sub, "pres-2", False, within=3)
        waited = time.perf_counter() - paused
    assert offline["reason"] == "timeout"
    assert waited < t(2), f"took {waited:.2f} s with 0.2 s ping interval and timeout"
    ws.transport.abort()


async def test_silent_agent_times_out(hub_factory: HubFactory) -> None:
    """An agent that answers pings but sends no frame within the idle timeout goes offline (timeout)."""
    hub = await hub_factory(heartbeat_interval=0.2, ping_timeout=0.2, ping_interval=5)
    async with hub.hub.bus.subscribe() as sub:
        ws = await connect_agent(hub, "pres-3")
        await presence_event(sub, "pres-3", True)
        offline = await presence_event(sub, "pres-3", False, within=3)
        await ws.wait_closed()
    assert offline["reason"] == "timeout"
    assert ws.close_code == 1011


async def test_heartbeats_keep_an_agent_online(hub_factory: HubFactory) -> None:
    """Heartbeat frames inside the interval keep a quiet agent online past the idle timeout."""
    hub = await hub_factory(heartbeat_interval=0.2, ping_timeout=0.2)
    async with await connect_agent(hub, "pres-4") as ws:
        for _ in range(8):  # 8 x 0.1 s > idle timeout of 0.6 s
            await send(ws, {"type": "heartbeat"})
            await asyncio.sleep(0.1)  # pacing the agent's own heartbeats, not waiting for a result
        assert hub.hub.presence.is_online("pres-4")


async def test_http_device_goes_offline_after_window(hub_factory: HubFactory) -> None:
    """An HTTP-only device is online while it ingests and offline once its window passes."""
    hub = await hub_factory(http_offline_after=0.3, presence_check_interval=0.05)
    async with (
        hub.hub.bus.subscribe() as sub,
        httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api,
    ):
        await api.post("/ingest", json={"device_id": "pres-5", "cpu": 1.0})
        online = await presence_event(sub, "pres-5", True)
        offline = await presence_event(sub, "pres-5", False, within=3)
        device = (await api.get("/devices/pres-5")).json()
    assert online["connection"] == "http"
    assert offline["reason"] == "timeout"
    assert device["online"] is False


async def test_ingest_online_event_carries_payload_details(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """The first ingest's online event carries the payload's hostname and version (no platform)."""
    async with hub.hub.bus.subscribe() as sub:
        sample = {"device_id": "pres-7", "cpu": 1.0, "hostname": "pres-7.lan", "agent_version": "0.9"}
        await api.post("/ingest", json=sample)
        online = await presence_event(sub, "pres-7", True)
    assert online["reason"] == "ingest"
    assert (online["hostname"], online["agent_version"], online["platform"]) == ("pres-7.lan", "0.9", None)


async def test_restart_leaves_nobody_online(hub: RunningHub) -> None:
    """After the hub stops and starts again, a device that was connected is not shown online."""
    ws = await connect_agent(hub, "pres-6")
    await hub.restart()
    await ws.wait_closed()
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        device = (await api.get("/devices/pres-6")).json()
    assert device["online"] is False
    assert device["offline_reason"] in {"hub_shutdown", "hub_restart"}
