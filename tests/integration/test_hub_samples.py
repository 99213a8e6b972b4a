"""Samples over a real socket: an invalid sample is refused alone, and ``stored`` only follows a commit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.agents import next_frame, open_socket, send
from tests.hubs import RunningHub

INT64_OVERFLOW = 18446744073709551615  # 2**64 - 1: valid JSON, but no store column holds it


async def agent(hub: RunningHub, device_id: str) -> ClientConnection:
    """A socket past hello (with ``stored_acks``) and welcome."""
    ws = await open_socket(hub)
    hello = {"type": "hello", "protocol": 1, "device_id": device_id, "capabilities": ["stored_acks"]}
    await send(ws, hello)
    assert (await next_frame(ws))["type"] == "welcome"
    return ws


async def frames_until(ws: ClientConnection, done: Any, within: float = 10) -> list[dict[str, Any]]:
    """Every frame received up to and including the first one for which ``done(frame)`` holds."""
    frames: list[dict[str, Any]] = []
    while not frames or not done(frames[-1]):
        frames.append(await next_frame(ws, within=within))
    return frames


def stored_up_to(seq: int) -> Any:
    return lambda frame: frame["type"] == "stored" and frame["seq"] >= seq


async def stored_samples(api: httpx.AsyncClient, device_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/devices/{device_id}/metrics")
    response.raise_for_status()
    samples: list[dict[str, Any]] = response.json()["samples"]
    return sorted(samples, key=lambda s: s["ts"])


@pytest.fixture
async def bystander(hub: RunningHub) -> AsyncIterator[ClientConnection]:
    """A well-behaved agent connected for the whole test."""
    async with await agent(hub, "bystander") as ws:
        yield ws


async def test_invalid_sample_of_a_batch_is_refused_alone(
    hub: RunningHub, api: httpx.AsyncClient, bystander: ClientConnection
) -> None:
    """The middle sample of three overflows int64: error names seq 2, the other two are stored and acked."""
    now = time.time()
    await send(bystander, {"type": "metrics", "seq": 1, "ts": now - 10, "cpu": 10.0})
    async with await agent(hub, "mixed") as ws:
        batch = [
            {"ts": now - 2, "cpu": 1.0, "uptime_sec": 100},
            {"ts": now - 1, "cpu": 2.0, "uptime_sec": INT64_OVERFLOW},
            {"ts": now, "cpu": 3.0, "uptime_sec": 102},
        ]
        await send(ws, {"type": "metrics_batch", "seq": 1, "samples": batch})
        await send(bystander, {"type": "metrics", "seq": 2, "ts": now - 9, "cpu": 11.0})
        frames = await frames_until(ws, stored_up_to(3))
    errors = [f for f in frames if f["type"] == "error"]
    assert [(e["code"], e["seq"]) for e in errors] == [("invalid_sample", 2)]
    assert "uptime_sec" in errors[0]["message"]
    assert frames[-1]["seq"] >= 3
    samples = await stored_samples(api, "mixed")
    assert [(s["cpu"], s["uptime_sec"]) for s in samples] == [(1.0, 100), (3.0, 102)]

    bystander_frames = await frames_until(bystander, stored_up_to(2))
    assert [f["type"] for f in bystander_frames if f["type"] != "stored"] == []
    assert [s["cpu"] for s in await stored_samples(api, "bystander")] == [10.0, 11.0]
    assert bystander.close_code is None


async def test_stored_is_never_sent_before_the_commit(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """While another connection holds SQLite's write lock no ``stored`` arrives; after it, it does."""
    ws = await agent(hub, "patient")  # the hello's own writes are done before the lock is taken
    # Another process's writer, as far as the hub can tell. The hub's busy_timeout (5 s) and the
    # writer's retry with backoff both outlast the window, so the sample waits, is never dropped.
    blocker = sqlite3.connect(hub.db_path, isolation_level=None, check_same_thread=False)
    await asyncio.to_thread(blocker.execute, "BEGIN IMMEDIATE")
    try:
        await send(ws, {"type": "metrics", "seq": 1, "ts": time.time(), "cpu": 42.0})
        # Frames are handled in order: the answer to this one proves the sample was read and submitted.
        await send(ws, {"type": "teleport"})
        early = await frames_until(ws, lambda f: f["type"] == "error")
        assert [f["type"] for f in early] == ["error"] and early[0]["code"] == "unknown_type"
        with pytest.raises(TimeoutError):
            await next_frame(ws, "stored", within=0.5)
        assert await stored_samples(api, "patient") == []  # readers are not blocked by the writer (WAL)
    finally:
        await asyncio.to_thread(blocker.execute, "ROLLBACK")
        blocker.close()
    stored = await next_frame(ws, "stored", within=15)
    assert stored["seq"] == 1
    assert [s["cpu"] for s in await stored_samples(api, "patient")] == [42.0]
    await ws.close()
