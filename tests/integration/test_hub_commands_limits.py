"""Nothing lost, nothing jammed: commands that cannot be delivered are refused, never stuck in a queue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from monitor_server.bus import Subscription
from monitor_server.events import CommandEvent
from monitor_server.store import Command
from protocol.commands import FINAL_STATES, CommandState
from tests.agentd import enqueue, start_local_agent, ws_transport
from tests.agents import connect_agent, next_frame
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.timing import t

LIMIT = 4096  # the hub's max_frame_bytes in these tests (the agent's too)


@asynccontextmanager
async def client(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        yield api


async def settled(events: Subscription, command_id: int, within: float = 10) -> Command:
    """The command as published when it reaches a final state (acked, cancelled, expired)."""
    async with asyncio.timeout(t(within)):
        while True:
            event = await events.get()
            assert event is not None, "the bus subscription overflowed"
            if (
                isinstance(event, CommandEvent)
                and event.command.id == command_id
                and event.command.state in FINAL_STATES
            ):
                return event.command


def padded(size: int) -> dict[str, Any]:
    return {"command": "echo", "args": {"pad": "x" * size}}


# Item 2: one oversized command must not jam its device.


async def test_command_too_big_to_frame_is_refused_at_enqueue(hub_factory: HubFactory) -> None:
    """A body within the request limit whose command frame would exceed the frame limit is 413, not queued."""
    hub = await hub_factory(max_frame_bytes=LIMIT)
    body = padded(LIMIT - 60)
    assert len(json.dumps(body)) < LIMIT  # the request itself is within the limit
    async with client(hub) as api:
        refused = await api.post("/devices/big-1/commands", json=body)
        assert refused.status_code == 413, refused.text[:200]
        assert f"limit {LIMIT} bytes" in refused.json()["detail"]
        assert (await api.get("/devices/big-1/commands")).json()["commands"] == []
        assert (await api.get("/devices/big-1/commands/next")).json() is None
        assert (await api.post("/devices/big-1/commands", json=padded(100))).status_code == 200


async def test_largest_accepted_command_fits_the_agent_frame_limit(hub_factory: HubFactory) -> None:
    """The largest command the hub accepts arrives whole at a socket that reads at most the frame limit."""
    hub = await hub_factory(max_frame_bytes=LIMIT)
    async with client(hub) as api:
        accepted, refused = 0, LIMIT  # pad lengths: the first is accepted, the second is not
        while refused - accepted > 1:
            middle = (accepted + refused) // 2
            status = (await api.post("/devices/probe/commands", json=padded(middle))).status_code
            assert status in (200, 413), status
            accepted, refused = (middle, refused) if status == 200 else (accepted, middle)
        async with await connect_agent(hub, "big-2", max_size=LIMIT) as ws:
            largest = (await api.post("/devices/big-2/commands", json=padded(accepted))).json()["id"]
            try:
                frame = await next_frame(ws, "command")
            except ConnectionClosed as exc:
                raise AssertionError(f"the accepted command did not fit the frame limit: {exc}") from None
    assert frame["id"] == largest and len(frame["args"]["pad"]) == accepted
    assert accepted > LIMIT // 2


async def test_agent_refuses_an_oversized_command_alone_and_stays_connected(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    """A stored command with a frame over the agent's limit is acked failed; the next runs; no reconnect."""
    hub = await hub_factory(max_frame_bytes=LIMIT)
    # Stored directly, as a hub with a larger limit (or before this check) would have queued it.
    big, _ = await hub.hub.store.create_command("big-3", "echo", {"pad": "x" * 2 * LIMIT}, time.time())
    transport = ws_transport(hub.ws_url, hub.token, max_frame_bytes=LIMIT)
    async with hub.hub.bus.subscribe() as events:
        local = start_local_agent(tmp_path, transport, device_id="big-3")
        try:
            refused = await settled(events, big.id)
            async with client(hub) as api:
                after = await enqueue(api, "big-3", "ping")
            ran = await settled(events, after)
        finally:
            await local.stop()
    assert refused.state is CommandState.ACKED and refused.success is False
    assert refused.message is not None and f"limit of {LIMIT} bytes" in refused.message
    assert refused.result is not None and refused.result["error"] == "frame_too_large"
    assert ran.state is CommandState.ACKED and (ran.success, ran.message) == (True, "pong")
    assert (transport.attempts, transport.connections) == (1, 1)


async def test_agent_refuses_an_invalid_command_frame_by_its_id(hub: RunningHub, tmp_path: Path) -> None:
    """A command frame that fails validation but names its id is acked failed, not left open forever."""
    # args must be an object: a row stored with a list makes a frame the agent cannot validate.
    bad_args: Any = [1, 2]
    bad, _ = await hub.hub.store.create_command("bad-1", "echo", bad_args, time.time())
    transport = ws_transport(hub.ws_url, hub.token)
    async with hub.hub.bus.subscribe() as events:
        local = start_local_agent(tmp_path, transport, device_id="bad-1")
        try:
            refused = await settled(events, bad.id)
            async with client(hub) as api:
                after = await enqueue(api, "bad-1", "ping")
            ran = await settled(events, after)
        finally:
            await local.stop()
    assert refused.state is CommandState.ACKED and refused.success is False
    assert refused.message is not None and "invalid" in refused.message
    assert ran.success is True
    assert (transport.attempts, transport.connections) == (1, 1)


# Item 8: an Idempotency-Key names one command body.


async def test_idempotency_key_reused_with_another_body_is_409(api: httpx.AsyncClient) -> None:
    """Same key and body returns the original; another command or args under that key is 409 naming it."""
    headers = {"Idempotency-Key": "deploy-7"}
    url = "/devices/idem-1/commands"
    first = await api.post(url, json={"command": "echo", "args": {"a": 1, "b": [2]}}, headers=headers)
    assert first.status_code == 200
    again = await api.post(url, json={"args": {"b": [2], "a": 1}, "command": "echo"}, headers=headers)
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["duplicate"]) == (first.json()["id"], True)
    for other in (
        {"command": "echo", "args": {"a": 2, "b": [2]}},
        {"command": "ping", "args": {"a": 1, "b": [2]}},
    ):
        conflict = await api.post(url, json=other, headers=headers)
        assert conflict.status_code == 409, conflict.text
        assert "deploy-7" in conflict.json()["detail"]
    listed = (await api.get(f"{url}")).json()["commands"]
    assert [c["id"] for c in listed] == [first.json()["id"]]


async def test_idempotency_key_of_a_cancelled_command_still_conflicts(api: httpx.AsyncClient) -> None:
    """After the original is cancelled, its key still returns it for the same body and is 409 for another."""
    headers = {"Idempotency-Key": "reboot-1"}
    url = "/devices/idem-2/commands"
    original = (await api.post(url, json={"command": "reboot"}, headers=headers)).json()
    assert (await api.delete(f"{url}/{original['id']}")).status_code == 200
    conflict = await api.post(url, json={"command": "reboot", "args": {"force": True}}, headers=headers)
    assert conflict.status_code == 409 and "reboot-1" in conflict.json()["detail"]
    same = await api.post(url, json={"command": "reboot", "args": None}, headers=headers)
    assert same.status_code == 200
    assert (same.json()["id"], same.json()["status"]) == (original["id"], "cancelled")
    assert (await api.get(f"{url}/next")).json() is None
