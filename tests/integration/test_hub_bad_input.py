"""Bad input on /ws/agent gets the documented answer and never disturbs another agent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.agents import connect_agent, next_frame, open_socket, send
from tests.conftest import HubFactory
from tests.hubs import RunningHub


@pytest.fixture
async def small_hub(hub_factory: HubFactory) -> RunningHub:
    """A hub with a 4 KiB frame limit and a short hello timeout."""
    return await hub_factory(max_frame_bytes=4096, hello_timeout=0.5)


@pytest.fixture
async def bystander(small_hub: RunningHub) -> AsyncIterator[ClientConnection]:
    """A well-behaved agent connected throughout the abuse."""
    async with await connect_agent(small_hub, "bystander") as ws:
        yield ws


async def still_served(hub: RunningHub, ws: ClientConnection) -> None:
    """The bystander still gets its commands pushed."""
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        cid = (await api.post("/devices/bystander/commands", json={"command": "ping"})).json()["id"]
    assert (await next_frame(ws, "command"))["id"] == cid


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"no": "type"}', "unknown_type"),
        ('{"type": "metrics", "cpu": "hot"}', "invalid_frame"),
        ('{"type": "ack", "id": "x", "success": true}', "invalid_frame"),
        ('{"type": "ack", "id": 424242, "success": true}', "unknown_command"),
        ('{"type": "hello", "protocol": 1, "device_id": "abuser"}', "unexpected_frame"),
    ],
)
async def test_bad_frame_gets_error_frame_and_session_survives(
    small_hub: RunningHub, bystander: ClientConnection, raw: str, code: str
) -> None:
    """A refused frame is answered with an error frame naming the problem; the socket stays usable."""
    async with await connect_agent(small_hub, "abuser") as ws:
        await ws.send(raw)
        error = await next_frame(ws, "error")
        assert error["code"] == code and error["message"]
        assert error.get("id") == (424242 if code == "unknown_command" else None)
        await send(ws, {"type": "metrics", "cpu": 5.0})
        await send(ws, {"type": "heartbeat"})
        await still_served(small_hub, bystander)
        assert small_hub.hub.presence.is_online("abuser")


async def test_first_frame_must_be_hello(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """Metrics before hello get an error frame and a 1008 close."""
    ws = await open_socket(small_hub)
    await send(ws, {"type": "metrics", "cpu": 1.0})
    error = await next_frame(ws, "error")
    await ws.wait_closed()
    assert error["code"] == "hello_required"
    assert ws.close_code == 1008
    await still_served(small_hub, bystander)


async def test_missing_hello_times_out(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """A socket that never says hello is closed with 1008 after the hello timeout."""
    ws = await open_socket(small_hub)
    error = await next_frame(ws, "error")
    await ws.wait_closed()
    assert error["code"] == "hello_timeout"
    assert ws.close_code == 1008
    await still_served(small_hub, bystander)


async def test_wrong_protocol_version_refused(small_hub: RunningHub) -> None:
    """A hello for another protocol version is refused with a clear error."""
    ws = await open_socket(small_hub)
    await send(ws, {"type": "hello", "protocol": 99, "device_id": "future"})
    error = await next_frame(ws, "error")
    await ws.wait_closed()
    assert error["code"] == "unsupported_protocol" and "99" in error["message"]


async def test_oversized_frame_closes_1009(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """A frame over the configured limit closes that socket with 1009; others are untouched."""
    ws = await connect_agent(small_hub, "big")
    await ws.send(json.dumps({"type": "metrics", "pad": "x" * 8192}))
    with pytest.raises(ConnectionClosed):
        await next_frame(ws)
    assert ws.close_code == 1009
    await still_served(small_hub, bystander)


async def test_wrong_token_refused_on_upgrade(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """A wrong or missing token is refused with 401 during the handshake: no socket is accepted."""
    for token in ("wrong", ""):
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(small_hub, token=token)
        assert refused.value.response.status_code == 401
    await still_served(small_hub, bystander)


async def test_flood_of_bad_frames_closes_1008(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """Ten invalid frames in a row close the socket with 1008 (policy violation)."""
    ws = await connect_agent(small_hub, "flooder")
    for _ in range(10):
        await ws.send("garbage")
    await ws.wait_closed()
    assert ws.close_code == 1008
    await still_served(small_hub, bystander)
