"""A minimal protocol-v1 agent over a real ``websockets`` client, for hub tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.hubs import RunningHub
from tests.timing import t


async def open_socket(hub: RunningHub, token: str | None = None, **kwargs: Any) -> ClientConnection:
    headers = {"X-Auth-Token": token if token is not None else hub.token}
    return await connect(
        hub.ws_url, additional_headers=headers, compression=None, open_timeout=t(5), **kwargs
    )


async def connect_agent(hub: RunningHub, device_id: str, **kwargs: Any) -> ClientConnection:
    """Open a socket, say hello and wait for the welcome."""
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
                "capabilities": ["ping", "echo"],
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
