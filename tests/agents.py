"""A minimal protocol-v1 agent over a real ``websockets`` client, for hub tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.hubs import RunningHub
from tests.timing import t


async def open_socket(hub: RunningHub, token: str | None = None, **kwargs: Any) -> ClientConnection:
    headers = {"X-Auth-Token": token if token is not None else hub.token}
    return await connect(
        hub.ws_url, additional_headers=headers, compression=None, open_timeout=t(5), **kwargs
    )


async def connect_agent(
    hub: RunningHub, device_id: str, capabilities: list[str] | None = None, **kwargs: Any
) -> ClientConnection:
    """Open a socket, say hello (offering ``capabilities``, ping and echo by default), wait for welcome."""
    ws = await open_socket(hub, **kwargs)
    await ws.send(
        json.dumps(
            {
                "type": "hello",
                "protocol": 1,
                "device_id": device_id,
                "agent_version": "test",
                "hostname": f"{device_id}.test",
                "platform": "linux",
                "capabilities": ["ping", "echo"] if capabilities is None else capabilities,
            }
        )
    )
    welcome = await next_frame(ws)
    assert welcome["type"] == "welcome", welcome
    return ws


async def next_frame(ws: ClientConnection, kind: str | None = None, within: float = 5) -> dict[str, Any]:
    """The next frame (of ``kind``, skipping others) within ``within`` seconds (scaled)."""
    async with asyncio.timeout(t(within)):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if kind is None or frame["type"] == kind:
                return frame


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


@asynccontextmanager
async def ui_feed(hub: RunningHub) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """A dashboard's ``/ws/ui``, logged in with the hub token, and the snapshot it opened with."""
    async with httpx.AsyncClient(base_url=hub.http_url) as browser:
        assert (await browser.post("/ui/login", data={"token": hub.token})).status_code == 303
        cookie = browser.cookies["monitor_session"]
    headers = {"Cookie": f"monitor_session={cookie}", "Origin": hub.http_url}
    ui_url = hub.ws_url.replace("/ws/agent", "/ws/ui")
    async with connect(ui_url, additional_headers=headers, open_timeout=t(5)) as feed:
        yield feed, json.loads(await feed.recv())
