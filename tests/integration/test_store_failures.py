"""A database that fails for a while costs the agent nothing: its socket stays, its ack is stored later."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time

import httpx

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
