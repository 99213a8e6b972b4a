"""Samples survive a hub whose commits stall or fail, even when it is killed meanwhile.

A real agent process streams every 0.05 s to a real hub process. The agent may forget a
spooled sample only once the hub's ``stored`` frame says its commit happened, so whatever
the hub goes through, the stored series has no gap wider than a few sampling intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.agentd import AgentProcess, eventually, spawn_agent
from tests.processes import HubProcess, free_port
from tests.timing import t

TOKEN = "nothing-lost-token-51c2"
INTERVAL = 0.05
MAX_GAP = 0.5  # seconds (scaled); a lost stretch of samples would leave a gap of several seconds


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub" / "monitor.db", free_port(), TOKEN)
    process.db.parent.mkdir()
    yield process
    process.stop()


@contextlib.asynccontextmanager
async def streaming_agent(hub: HubProcess, state_dir: Path, device_id: str) -> AsyncIterator[AgentProcess]:
    """A real agent sampling every 0.05 s; on exit it is stopped with SIGTERM (it flushes)."""
    agent = spawn_agent(hub, state_dir, "--interval", str(INTERVAL), "--device-id", device_id)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}) as api:
            await eventually(lambda: stored_count(api, device_id, 20), what="first samples stored")
        yield agent
    finally:
        agent.proc.terminate()
        agent.proc.wait(timeout=t(15))


async def stored_count(api: httpx.AsyncClient, device_id: str, at_least: int) -> bool:
    response = await api.get(f"/devices/{device_id}/metrics", params={"limit": 10000})
    return response.status_code == 200 and len(response.json()["samples"]) >= at_least


def spooled(state_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(state_dir / "spool.sqlite3", timeout=5)) as db:
        count: int = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        return count


async def drained(state_dir: Path) -> None:
    """The agent's spool holds at most the sample being sent right now."""

    async def probe() -> bool:
        return spooled(state_dir) <= 1

    await eventually(probe, within=30, what="agent spool drained")


async def widest_gap(hub: HubProcess, device_id: str) -> tuple[float, int]:
    """The widest gap between consecutive stored samples of ``device_id``, and their count."""
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}) as api:
        response = await api.get(f"/devices/{device_id}/metrics", params={"limit": 10000})
    times = sorted(
        datetime.fromisoformat(s["ts"].replace("Z", "+00:00")).timestamp() for s in response.json()["samples"]
    )
    return max(b - a for a, b in itertools.pairwise(times)), len(times)


@contextlib.contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock on ``db`` from another connection, as a backup or a stuck writer would."""
    holder = sqlite3.connect(db, timeout=10, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_write_lock_then_sigkill_loses_no_sample(hub_process: HubProcess, tmp_path: Path) -> None:
    """Write lock held 3 s, hub killed (-9) during it, restarted: the agent resends, no gap is left."""
    await hub_process.start()
    state = tmp_path / "agent"
    async with streaming_agent(hub_process, state, "locked-then-killed"):
        with write_lock(hub_process.db):
            await asyncio.sleep(3)  # the fault itself: 3 s of samples the hub cannot commit
            hub_process.kill()
        await hub_process.start()
        await drained(state)
    gap, count = await widest_gap(hub_process, "locked-then-killed")
    assert count > 60, count
    assert gap <= t(MAX_GAP), f"widest gap {gap:.3f} s over {count} samples"


async def test_commits_failing_for_seconds_lose_no_sample(hub_process: HubProcess, tmp_path: Path) -> None:
    """Write lock held past the hub's busy timeout: commits fail, are retried, nothing is lost, no restart."""
    await hub_process.start()
    state = tmp_path / "agent"
    async with streaming_agent(hub_process, state, "commits-failing"):
        with write_lock(hub_process.db):
            await asyncio.sleep(7)  # longer than busy_timeout (5 s): at least one commit fails
        await drained(state)
    log = hub_process.log_path.read_text()
    assert "retrying until it works" in log and "works again" in log
    gap, count = await widest_gap(hub_process, "commits-failing")
    assert count > 100, count
    assert gap <= t(MAX_GAP), f"widest gap {gap:.3f} s over {count} samples"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs to fill up (needs root, as in CI; elsewhere the test is skipped)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], check=False, capture_output=True
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to mount a tmpfs (root): {done.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; return it (removing it frees the space)."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
        while True:
            out.write(chunk)
    return filler


async def test_full_disk_loses_no_sample_and_recovers(small_disk: Path, tmp_path: Path) -> None:
    """The database's disk fills for 3 s: commits fail, samples stay spooled, all stored after."""
    hub = HubProcess(small_disk / "monitor.db", free_port(), TOKEN)
    hub.log_path = tmp_path / "hub.log"  # not on the disk that fills up
    state = tmp_path / "agent"
    await hub.start()
    try:
        async with streaming_agent(hub, state, "disk-full"):
            filler = fill(small_disk)
            async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}) as api:
                await eventually(lambda: failing(hub), within=15, what="a commit failing on the full disk")
                health = await api.get("/health")
                ingest = await api.post("/ingest", json={"device_id": "http-1", "cpu": 1.0})
                enqueue = await api.post("/devices/disk-full/commands", json={"command": "ping"})
                await asyncio.sleep(3)
                filler.unlink()
                await drained(state)
                assert (await api.get("/health")).status_code == 200
        gap, count = await widest_gap(hub, "disk-full")
    finally:
        hub.stop()
    assert count > 60, count
    assert gap <= t(MAX_GAP), f"widest gap {gap:.3f} s over {count} samples"
    assert health.status_code == 503 and health.json()["store"].startswith("failing")
    for refused in (ingest, enqueue):
        assert refused.status_code == 503, refused.text
        assert "detail" in refused.json() and refused.headers["retry-after"] == "5"


async def failing(hub: HubProcess) -> bool:
    return "retrying until it works" in hub.log_path.read_text(errors="replace")
