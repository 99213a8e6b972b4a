"""Two agents with one device id (cloned machines): the first keeps it, the newcomer is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.agentd import eventually, start_local_agent, ws_transport
from tests.agents import next_frame, open_socket
from tests.conftest import HubFactory
from tests.hubs import RunningHub


def hello(device_id: str, instance_id: str) -> str:
    return json.dumps({"type": "hello", "protocol": 1, "device_id": device_id, "instance_id": instance_id})


async def say_hello(hub: RunningHub, device_id: str, instance_id: str) -> tuple[Any, dict[str, Any]]:
    ws = await open_socket(hub)
    await ws.send(hello(device_id, instance_id))
    return ws, await next_frame(ws)


async def test_second_instance_is_refused_and_the_first_kept(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A second instance claiming a live device id gets ``duplicate_device`` and 4002; the first stays."""
    first, welcome = await say_hello(hub, "clone", "instance-a")
    assert welcome["type"] == "welcome"
    second, refusal = await say_hello(hub, "clone", "instance-b")
    await second.wait_closed()
    assert refusal["code"] == "duplicate_device" and refusal["retry_after"] > 60
    assert second.close_code == 4002
    await first.send(json.dumps({"type": "heartbeat"}))
    await first.ping()  # still open: the hub did not replace it
    assert first.close_code is None
    device = (await api.get("/devices/clone")).json()
    assert device["online"] is True
    assert (
        device["duplicate"]["instance_id"] == "instance-b" and device["duplicate"]["held_by"] == "instance-a"
    )
    listed = {d["device_id"]: d for d in (await api.get("/devices")).json()}
    assert listed["clone"]["duplicate"]["refused"] == 1
    await first.close()


async def test_same_instance_reconnecting_replaces_its_old_socket(hub: RunningHub) -> None:
    """The same instance connecting again (a half-open old socket) replaces it with 4000, as before."""
    old, _ = await say_hello(hub, "same", "instance-a")
    new, welcome = await say_hello(hub, "same", "instance-a")
    await old.wait_closed()
    assert welcome["type"] == "welcome" and old.close_code == 4000
    await new.close()


async def test_agent_without_instance_id_replaces_as_before(hub: RunningHub) -> None:
    """An older agent that sends no instance id is never refused as a duplicate."""
    old, _ = await say_hello(hub, "legacy", "instance-a")
    new, welcome = await say_hello(hub, "legacy", "")
    await old.wait_closed()
    assert welcome["type"] == "welcome" and old.close_code == 4000
    await new.close()


async def test_refused_agent_backs_off_for_retry_after(hub_factory: HubFactory, tmp_path: Path) -> None:
    """A real agent refused as a duplicate waits the hub's ``retry_after`` (not its short backoff)."""
    hub = await hub_factory(duplicate_retry_after=30.0)
    first = start_local_agent(
        tmp_path / "a", ws_transport(hub.ws_url, hub.token), device_id="twin", instance_id="instance-a"
    )
    await first.transport.wait_connected()
    second = start_local_agent(
        tmp_path / "b", ws_transport(hub.ws_url, hub.token), device_id="twin", instance_id="instance-b"
    )

    async def refused() -> bool:
        return "duplicate_device" in second.transport.last_failure

    await eventually(refused, what="second instance refused")
    assert second.transport.last_delay >= 24  # 30 s with jitter, against a 0.3 s backoff cap
    assert second.transport.attempts == 1
    assert first.transport.state == "connected"
    await second.stop()
    await first.stop()
