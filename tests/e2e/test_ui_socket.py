"""``/ws/ui`` over a real ``websockets`` client: cookie and Origin are both required."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from monitor_server.events import DeviceDetails, PresenceChanged, SampleEvent
from monitor_server.store import PresenceEvent, Sample
from tests.conftest import HubFactory
from tests.e2e.conftest import COOKIE
from tests.hubs import RunningHub
from tests.timing import t

pytestmark = pytest.mark.e2e


def ui_url(hub: RunningHub) -> str:
    return hub.ws_url.replace("/ws/agent", "/ws/ui")


async def refused_status(hub: RunningHub, origin: str | None, cookie: str | None) -> int:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            ui_url(hub),
            origin=origin,
            additional_headers=headers,  # type: ignore[arg-type]
            open_timeout=t(5),
        ):
            pass
    return refused.value.response.status_code


async def read_until_closed(ws: ClientConnection) -> None:
    async with asyncio.timeout(t(5)):
        while True:
            await ws.recv()


async def test_own_origin_with_cookie_gets_a_snapshot(hub: RunningHub, session_cookie: str) -> None:
    """The control case: the hub's own Origin and a valid cookie open the feed with a snapshot."""
    async with connect(
        ui_url(hub),
        origin=hub.http_url,  # type: ignore[arg-type]
        additional_headers={"Cookie": f"{COOKIE}={session_cookie}"},
        open_timeout=t(5),
    ) as ws:
        frame = json.loads(await ws.recv())
    assert frame["type"] == "snapshot" and frame["devices"] == []


async def test_bus_events_reach_the_browser_as_json(hub: RunningHub, session_cookie: str) -> None:
    """After the snapshot, a connected event arrives as JSON with the hello's details, then a sample."""
    async with connect(
        ui_url(hub),
        origin=hub.http_url,  # type: ignore[arg-type]
        additional_headers={"Cookie": f"{COOKIE}={session_cookie}"},
        open_timeout=t(5),
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        details = DeviceDetails(hostname="feed-1.lan", agent_version="3.0", platform="linux")
        await hub.hub.presence.ws_connected("feed-1", details)
        hub.hub.bus.publish(SampleEvent.of(Sample("feed-1", time.time(), 5.0, None, None, None, "ok")))
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(t(5)):
            while len(received) < 2:
                received += json.loads(await ws.recv())["events"]
    presence, sample = received
    assert presence["type"] == "presence" and presence["device_id"] == "feed-1"
    assert presence["online"] is True and presence["reason"] == "connected"
    assert (presence["hostname"], presence["agent_version"], presence["platform"]) == (
        "feed-1.lan",
        "3.0",
        "linux",
    )
    assert sample["type"] == "sample" and sample["device_id"] == "feed-1" and sample["cpu"] == 5.0


async def test_foreign_origin_is_refused_even_with_a_cookie(hub: RunningHub, session_cookie: str) -> None:
    """A page on another site cannot ride the operator's cookie onto the feed."""
    assert await refused_status(hub, "https://evil.example", session_cookie) == 403
    assert await refused_status(hub, None, session_cookie) == 403


async def test_missing_or_forged_cookie_is_refused(hub: RunningHub, session_cookie: str) -> None:
    """No cookie, a tampered cookie, or the raw token as a cookie: all refused before accept."""
    assert await refused_status(hub, hub.http_url, None) == 403
    forged = session_cookie[:-4] + ("0000" if not session_cookie.endswith("0000") else "1111")
    assert await refused_status(hub, hub.http_url, forged) == 403
    assert await refused_status(hub, hub.http_url, hub.token) == 403


async def test_browser_that_falls_behind_is_disconnected(hub_factory: HubFactory) -> None:
    """More events than its queue holds, before it could read them: the feed closes with 1013."""
    small = await hub_factory(ui_queue_size=4)
    async with httpx.AsyncClient(base_url=small.http_url) as client:
        cookie = (await client.post("/ui/login", data={"token": small.token})).cookies[COOKIE]
    async with connect(
        ui_url(small),
        origin=small.http_url,  # type: ignore[arg-type]
        additional_headers={"Cookie": f"{COOKIE}={cookie}"},
        open_timeout=t(5),
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        for n in range(10):  # synchronously: the feed gets no chance to drain in between
            online = PresenceEvent(f"d{n}", True, "connected", "ws", time.time())
            small.hub.bus.publish(PresenceChanged.of(online))
        with pytest.raises(ConnectionClosed) as closed:
            await read_until_closed(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert small.hub.bus.subscriber_count == 0
