"""One hub per SQLite database: a second process is refused before it reads or writes anything."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.agents import next_frame, send
from tests.processes import HubProcess, free_port
from tests.timing import t

TOKEN = "lock-token-5c0e9a71"


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hub processes a test starts; all stopped at its end."""
    started: list[HubProcess] = []
    yield started
    for process in started:
        process.stop()


async def run_hub(db: Path, *args: str) -> tuple[int, str]:
    """``python -m monitor_server`` on ``db`` and a free port, to its exit: (status, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor_server",
        "--db",
        str(db),
        "--port",
        str(free_port()),
        *args,
        env={"MONITOR_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(t(20)):
            output, _ = await proc.communicate()
    finally:
        if proc.returncode is None:  # still serving: the database was not refused to it
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, output.decode()


async def test_second_hub_on_same_database_is_refused_and_changes_nothing(
    tmp_path: Path, hubs: list[HubProcess]
) -> None:
    """A second hub on the same database exits non-zero naming the first's pid; presence is untouched."""
    db = tmp_path / "monitor.db"
    first = HubProcess(db, free_port(), TOKEN)
    hubs.append(first)
    await first.start()
    assert first.proc is not None
    headers = {"X-Auth-Token": TOKEN}
    async with connect(first.ws_url, additional_headers=headers, open_timeout=t(5)) as ws:
        await send(ws, {"type": "hello", "protocol": 1, "device_id": "steady"})
        await next_frame(ws, "welcome")

        status, output = await run_hub(db)

        assert status != 0
        assert "in use by another hub" in output and f"pid {first.proc.pid}" in output
        assert "listening on" not in output  # refused before the banner
        async with httpx.AsyncClient(base_url=first.http_url, headers=headers) as api:
            device = (await api.get("/devices/steady")).json()
            events = (await api.get("/devices/steady/events")).json()["events"]
        assert device["online"] is True and device["connected"] is True
        assert [e["reason"] for e in events if not e["online"]] == []
        await send(ws, {"type": "ack", "id": 424242, "success": True})
        assert (await next_frame(ws, "error"))["code"] == "unknown_command"  # the socket still served


async def test_sigkilled_hub_releases_the_lock(tmp_path: Path, hubs: list[HubProcess]) -> None:
    """After a SIGKILL the database can be opened again, and the new hub holds the lock in turn."""
    db = tmp_path / "monitor.db"
    first = HubProcess(db, free_port(), TOKEN)
    hubs.append(first)
    await first.start()
    first.kill()

    again = HubProcess(db, free_port(), TOKEN)
    hubs.append(again)
    await again.start()
    assert again.proc is not None

    status, output = await run_hub(db)
    assert status != 0 and f"pid {again.proc.pid}" in output
    assert (db.parent / "monitor.db.lock").read_text().strip() == str(again.proc.pid)


async def test_backup_runs_while_a_hub_holds_the_lock(tmp_path: Path, hubs: list[HubProcess]) -> None:
    """``monitor-server backup`` copies the database of a running hub: it does not need the lock."""
    db = tmp_path / "monitor.db"
    first = HubProcess(db, free_port(), TOKEN)
    hubs.append(first)
    await first.start()
    dest = tmp_path / "copy.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor_server", "backup", str(dest), "--db", str(db)
    )
    async with asyncio.timeout(t(30)):
        assert await proc.wait() == 0
    assert dest.stat().st_size > 0
