"""A database that fails for a while costs the agent nothing: its socket stays, its ack is stored later."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time

import httpx
from websockets.asyncio.client import ClientConnection

from monitor_server.keepalive import ABORT_EXTENSION, QUEUED_BEFORE_PAUSE
from tests.agentd import eventually
from tests.agents import connect_agent, next_frame, send
from tests.conftest import HubFactory
from tests.hubs import RunningHub


async def test_ack_during_a_store_failure_is_not_confirmed_and_the_socket_stays(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """An ack the store cannot commit gets no ``acked``, keeps the socket open, and is stored when resent."""
    queued = (await api.post("/devices/ack-fail/commands", json={"command": "ping"})).json()
    async with await connect_agent(hub, "ack-fail") as ws:
        await next_frame(ws, "command")
        holder = sqlite3.connect(hub.db_path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            # Off the loop (the hub shares it); held past the hub's busy timeout: its commit fails.
            await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
            await send(ws, {"type": "ack", "id": queued["id"], "success": True, "message": "pong"})

            async def ack_failed() -> bool:
                return hub.hub.writer.failure() is not None

            await eventually(ack_failed, within=15, what="the ack's commit failing")
            await send(ws, {"type": "heartbeat"})
        finally:
            with contextlib.suppress(sqlite3.Error):
                holder.execute("ROLLBACK")
            holder.close()
        await send(ws, {"type": "ack", "id": queued["id"], "success": True, "message": "pong"})
        acked = await next_frame(ws, "acked")
        assert ws.close_code is None
    stored = (await api.get(f"/devices/ack-fail/commands/{queued['id']}")).json()
    assert acked["id"] == queued["id"] and stored["status"] == "acked"


async def test_agent_held_back_by_a_stalled_store_keeps_its_socket(hub_factory: HubFactory) -> None:
    """While its samples wait for a commit the hub stops reading the agent, yet the keepalive spares it."""
    hub = await hub_factory(ping_interval=0.5, ping_timeout=0.5, batch_max_rows=10)
    async with await connect_agent(hub, "held-back") as ws:
        holder = sqlite3.connect(hub.db_path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
            now = time.time()
            batch = [{"ts": now - i, "cpu": 1.0} for i in range(100)]  # past the backlog's 40 rows
            await send(ws, {"type": "metrics_batch", "seq": 1, "samples": batch})
            await send(ws, {"type": "heartbeat"})  # not read until a commit makes room
            await asyncio.sleep(3)  # the stall itself: six keepalive periods with the socket unread
        finally:
            with contextlib.suppress(sqlite3.Error):
                holder.execute("ROLLBACK")
            holder.close()
        await send(ws, {"type": "heartbeat"})
        await ws.ping()
        assert ws.close_code is None


async def test_a_flooding_agent_is_read_no_faster_than_its_samples_are_stored(
    hub_factory: HubFactory,
) -> None:
    """While its samples wait for a commit the hub stops reading the agent a few frames later: what
    it sends waits in TCP buffers (one read of the socket at most is queued in the hub, never the
    whole flood), and everything is stored once the commit goes through."""
    hub = await hub_factory(batch_max_rows=10)  # a backlog of 40 rows makes readers wait
    frames, per_frame = 30, 100  # 100 KB each, 3 MB: far more than one read of the socket (256 KiB)
    async with await connect_agent(hub, "flooder", ["stored_acks"]) as ws:
        socket = hub.hub.sessions.get("flooder")
        assert socket is not None
        transport = socket.websocket.scope["extensions"][ABORT_EXTENSION]["abort"].__self__
        protocol = transport.get_protocol()
        holder = sqlite3.connect(hub.db_path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
            now = time.time()
            texts = [
                json.dumps(
                    {
                        "type": "metrics_batch",
                        "seq": (k + 1) * per_frame,
                        "samples": [
                            {"ts": now - k * per_frame - i, "cpu": 1.0, "last_error": "x" * 1000}
                            for i in range(per_frame)
                        ],
                    }
                )
                for k in range(frames)
            ]
            sender = asyncio.ensure_future(_send_all(ws, texts))

            async def reads_paused() -> bool:
                return bool(protocol.read_paused)

            await eventually(reads_paused, within=10, what="the hub pausing its reads of the agent")
            read_at_most = QUEUED_BEFORE_PAUSE + (256 << 10) // len(texts[0]) + 1
            assert protocol.queue.qsize() <= read_at_most < frames
            assert hub.hub.writer.pending <= 40 + per_frame  # the backlog's bound and one frame past it
        finally:
            with contextlib.suppress(sqlite3.Error):
                holder.execute("ROLLBACK")
            holder.close()
        await sender
        stored = await next_frame(ws, "stored", within=30)
        while stored["seq"] < frames * per_frame:
            stored = await next_frame(ws, "stored", within=30)
    rows = sqlite3.connect(hub.db_path).execute("SELECT COUNT(*) FROM samples WHERE device_id = 'flooder'")
    assert rows.fetchone()[0] == frames * per_frame


async def _send_all(ws: ClientConnection, texts: list[str]) -> None:
    for text in texts:
        await ws.send(text)
