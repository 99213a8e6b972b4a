"""Values the store cannot hold are refused alone: never a 500, never other devices' samples lost."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from monitor_server.ingest import SampleWriter
from monitor_server.store import Sample, open_store
from tests.agents import connect_agent, next_frame, send
from tests.hubs import RunningHub

U64_UNKNOWN = 18446744073709551615  # a common "unknown" value, outside signed 64 bits


async def test_ingest_refuses_an_integer_outside_64_bits(api: httpx.AsyncClient) -> None:
    """``uptime_sec: 2**64-1`` on /ingest is a 422 with a JSON detail naming the field, not a 500."""
    response = await api.post("/ingest", json={"device_id": "p", "uptime_sec": U64_UNKNOWN})
    assert response.status_code == 422
    assert "uptime_sec" in response.json()["detail"]


async def test_healthy_ingest_unaffected_by_a_bad_sender(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """While one device sends unstorable values over both ways in, every healthy sample is stored."""
    async with await connect_agent(hub, "bad-ws") as bad:
        for i in range(20):
            await send(bad, {"type": "metrics", "uptime_sec": U64_UNKNOWN, "cpu": 1.0})
            await send(bad, {"type": "metrics", "ts": time.time() - i, "cpu": 2.0})  # a good one between
            answers = await asyncio.gather(
                api.post("/ingest", json={"device_id": "bad-http", "uptime_sec": U64_UNKNOWN}),
                api.post("/ingest", json={"device_id": "healthy", "cpu": float(i)}),
            )
            assert [a.status_code for a in answers] == [422, 200]
        assert (await next_frame(bad, "error"))["code"] == "invalid_frame"
        assert bad.close_code is None
    samples = (await api.get("/devices/healthy/metrics", params={"limit": 1000})).json()["samples"]
    assert len(samples) == 20


async def test_ack_with_an_id_outside_64_bits_gets_an_error_frame(hub: RunningHub) -> None:
    """An ack whose id overflows 64 bits is refused with an error frame; the socket stays open."""
    async with await connect_agent(hub, "big-ack") as ws:
        await send(ws, {"type": "ack", "id": 9223372036854775808, "success": True})
        error = await next_frame(ws, "error")
        await send(ws, {"type": "ack", "id": 1, "success": True})
        unknown = await next_frame(ws, "error")
        assert ws.close_code is None
    assert error["code"] == "invalid_frame" and "id" in error["message"]
    assert unknown["code"] == "unknown_command"


async def test_writer_isolates_a_row_the_store_refuses(tmp_path: Path) -> None:
    """A row SQLite cannot hold (past validation) is left out alone; the rest of its batch commits."""
    store = open_store(tmp_path / "monitor.db")
    await store.open()
    writer = SampleWriter(store, max_rows=100)
    now = time.time()
    rows = [Sample(f"dev-{i}", now - i, 1.0, 2.0, 3.0, 60, "ok") for i in range(9)]
    rows.insert(4, Sample("bad", now, 1.0, 2.0, 3.0, 2**64 - 1, "ok"))
    try:
        done = [writer.submit(row) for row in rows]
        await writer.flush()
        await asyncio.gather(*done)
        stored = [await store.latest_sample(f"dev-{i}") for i in range(9)]
    finally:
        await store.close()
    assert writer.rows_refused == 1 and writer.rows_written == 9
    assert all(sample is not None for sample in stored)


async def test_text_frame_not_utf8_closes_1007_with_one_log_line(hub: RunningHub, caplog: Any) -> None:
    """Invalid UTF-8 in a text frame closes with 1007 and logs one warning line, no traceback."""
    caplog.set_level(logging.INFO)
    ws = await connect_agent(hub, "not-utf8")
    await ws.send(b'{"type": "heartbeat", "x": "\xff\xfe"}', text=True)
    await ws.wait_closed()
    assert ws.close_code == 1007
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "UTF-8" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]


async def test_ack_result_outside_64_bits_is_refused_and_the_command_stays_open(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """An ack whose extra result holds an integer past 64 bits gets an error frame; a good ack still works."""
    queued = (await api.post("/devices/big-result/commands", json={"command": "ping"})).json()
    async with await connect_agent(hub, "big-result") as ws:
        await next_frame(ws, "command")
        await send(ws, {"type": "ack", "id": queued["id"], "success": True, "output": {"n": 2**70}})
        error = await next_frame(ws, "error")
        await send(ws, {"type": "ack", "id": queued["id"], "success": True, "output": "ok"})
        acked = await next_frame(ws, "acked")
    assert error["code"] == "invalid_frame" and "output.n" in error["message"]
    assert acked["id"] == queued["id"]
