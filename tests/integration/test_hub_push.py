"""Commands pushed over /ws/agent: instant, FIFO, re-sent until acknowledged, exactly as stored."""

from __future__ import annotations

import asyncio
import time

import httpx

from monitor_server.events import PresenceChanged
from tests.agents import connect_agent, next_frame, send
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.timing import t


async def test_command_is_pushed_without_polling(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A connected agent receives the command the enqueue call created, with no request of its own."""
    async with await connect_agent(hub, "push-1") as ws:
        started = time.perf_counter()
        body = {"command": "echo", "args": {"a": 1}}
        queued = (await api.post("/devices/push-1/commands", json=body)).json()
        returned = time.perf_counter()
        frame = await next_frame(ws, "command")
        arrived = time.perf_counter()
    assert frame == {
        "type": "command",
        "id": queued["id"],
        "command": "echo",
        "args": {"a": 1},
        "created_at": queued["created_at"],
    }
    print(f"enqueue {1000 * (returned - started):.2f} ms; frame {1000 * (arrived - returned):.2f} ms later")


async def test_three_commands_arrive_in_fifo_order(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Three commands queued back to back arrive in the order they were queued."""
    async with await connect_agent(hub, "push-2") as ws:
        ids = [
            (await api.post("/devices/push-2/commands", json={"command": f"c{i}"})).json()["id"]
            for i in range(3)
        ]
        received = [(await next_frame(ws, "command"))["id"] for _ in range(3)]
    assert received == ids


async def test_commands_queued_offline_arrive_on_connect_in_order(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Commands queued for a device never seen yet wait, then arrive FIFO when it connects."""
    ids = [
        (await api.post("/devices/push-3/commands", json={"command": f"c{i}"})).json()["id"] for i in range(4)
    ]
    async with await connect_agent(hub, "push-3") as ws:
        received = [(await next_frame(ws, "command"))["id"] for _ in range(4)]
    assert received == ids


async def test_unacked_resent_acked_never(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """After a reconnect the unacknowledged command comes again and the acknowledged one does not."""
    first = (await api.post("/devices/push-4/commands", json={"command": "one"})).json()["id"]
    second = (await api.post("/devices/push-4/commands", json={"command": "two"})).json()["id"]
    async with await connect_agent(hub, "push-4") as ws:
        assert (await next_frame(ws, "command"))["id"] == first
        assert (await next_frame(ws, "command"))["id"] == second
        await send(ws, {"type": "ack", "id": first, "success": True, "message": "done", "output": "x"})
        assert await next_frame(ws, "acked") == {"type": "acked", "id": first}
    async with await connect_agent(hub, "push-4") as ws:
        assert (await next_frame(ws, "command"))["id"] == second
        third = (await api.post("/devices/push-4/commands", json={"command": "three"})).json()["id"]
        assert (await next_frame(ws, "command"))["id"] == third
    stored = (await api.get(f"/devices/push-4/commands/{first}")).json()
    assert stored["status"] == "acked" and stored["result"] == {"output": "x"}
    assert (await api.get(f"/devices/push-4/commands/{second}")).json()["status"] == "delivered"


async def test_second_ws_ack_keeps_first_result(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A repeated ack over the socket is confirmed again but the first stored result stands."""
    cid = (await api.post("/devices/push-5/commands", json={"command": "ping"})).json()["id"]
    async with await connect_agent(hub, "push-5") as ws:
        await next_frame(ws, "command")
        await send(ws, {"type": "ack", "id": cid, "success": True, "message": "pong"})
        await next_frame(ws, "acked")
        await send(ws, {"type": "ack", "id": cid, "success": False, "message": "again"})
        assert (await next_frame(ws, "acked"))["id"] == cid
    stored = (await api.get(f"/devices/push-5/commands/{cid}")).json()
    assert stored["success"] is True and stored["message"] == "pong"


async def test_cancelled_command_is_not_resent(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A command cancelled while the agent was away is not delivered when it connects."""
    keep = (await api.post("/devices/push-6/commands", json={"command": "keep"})).json()["id"]
    drop = (await api.post("/devices/push-6/commands", json={"command": "drop"})).json()["id"]
    assert (await api.delete(f"/devices/push-6/commands/{drop}")).status_code == 200
    last = (await api.post("/devices/push-6/commands", json={"command": "last"})).json()["id"]
    async with await connect_agent(hub, "push-6") as ws:
        received = [(await next_frame(ws, "command"))["id"] for _ in range(2)]
    assert received == [keep, last]


async def test_idempotent_enqueue_pushes_once(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Repeating an enqueue with the same Idempotency-Key does not push a second frame."""
    headers = {"Idempotency-Key": "k-1"}
    async with await connect_agent(hub, "push-7") as ws:
        first = (await api.post("/devices/push-7/commands", json={"command": "a"}, headers=headers)).json()
        await api.post("/devices/push-7/commands", json={"command": "a"}, headers=headers)
        marker = (await api.post("/devices/push-7/commands", json={"command": "marker"})).json()
        received = [(await next_frame(ws, "command"))["id"] for _ in range(2)]
    assert received == [first["id"], marker["id"]]


async def test_second_connection_replaces_first(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A second connection for the same device takes over; the first is closed and gets nothing more."""
    old = await connect_agent(hub, "push-8")
    async with await connect_agent(hub, "push-8") as new:
        await old.wait_closed()
        assert old.close_code == 4000
        cid = (await api.post("/devices/push-8/commands", json={"command": "x"})).json()["id"]
        assert (await next_frame(new, "command"))["id"] == cid
        device = (await api.get("/devices/push-8")).json()
        assert device["online"] is True


async def test_stalled_agent_never_blocks_others(hub_factory: HubFactory) -> None:
    """An agent that stops reading fills its own bounded outbox and is dropped; others are served."""
    hub = await hub_factory(outbox_size=4, ping_interval=0.3, ping_timeout=0.3)
    client = httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token})
    async with hub.hub.bus.subscribe() as sub, client as api:
        stalled = await connect_agent(hub, "stalled", ping_interval=None, max_queue=1)
        stalled.transport.pause_reading()
        big = {"blob": "x" * 20_000}
        for _ in range(40):  # ~800 KB: far past the socket buffers and the 4-frame outbox
            response = await api.post("/devices/stalled/commands", json={"command": "echo", "args": big})
            assert response.status_code == 200
        async with await connect_agent(hub, "healthy") as healthy:
            cid = (await api.post("/devices/healthy/commands", json={"command": "ping"})).json()["id"]
            assert (await next_frame(healthy, "command", within=1))["id"] == cid
        async with asyncio.timeout(t(5)):
            while True:
                event = await sub.get()
                assert event is not None
                if (
                    isinstance(event, PresenceChanged)
                    and event.device_id == "stalled"
                    and not event.change.online
                ):
                    break
    assert event.change.reason in {"timeout", "overloaded"}
    assert "stalled" not in hub.hub.sessions
    stalled.transport.abort()
