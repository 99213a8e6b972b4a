"""`monitor-server backup`: a consistent copy of the live database, and a hub restored from it."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.timing import t


def sample(device_id: str, n: int) -> dict[str, object]:
    return {
        "device_id": device_id,
        "hostname": "h",
        "cpu": float(n % 100),
        "ram": 1.0,
        "disk": 2.0,
        "uptime_sec": n,
        "agent_version": "1",
        "status": "ok",
        "last_error": "",
    }


async def run_backup(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "monitor_server", "backup", *args]
    return await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=t(60), check=False
    )


async def test_backup_while_ingesting_then_restore_into_a_new_hub(
    hub: RunningHub, api: httpx.AsyncClient, hub_factory: HubFactory, tmp_path: Path
) -> None:
    """A backup taken during ingest is complete and self-contained; a hub started on it has the data."""
    for n in range(20):
        assert (await api.post("/ingest", json=sample("before", n))).status_code == 200
    queued = (await api.post("/devices/before/commands", json={"command": "echo", "args": {}})).json()

    stop = asyncio.Event()

    async def keep_ingesting() -> int:
        sent = 0
        while not stop.is_set():
            assert (await api.post("/ingest", json=sample("during", sent))).status_code == 200
            sent += 1
        return sent

    writer = asyncio.create_task(keep_ingesting())
    dest = tmp_path / "backups" / "monitor-backup.db"
    result = await run_backup(str(dest), "--db", str(hub.db_path))
    stop.set()
    assert await writer > 0
    assert result.returncode == 0, result.stderr
    assert "integrity ok" in result.stdout
    assert not dest.with_name(dest.name + "-wal").exists()

    with sqlite3.connect(dest) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        devices = {row[0] for row in copy.execute("SELECT device_id FROM devices")}
    assert "before" in devices

    restored_db = tmp_path / "restored" / "monitor.db"
    restored_db.parent.mkdir()
    shutil.copy(dest, restored_db)
    restored = await hub_factory(db=restored_db)
    async with httpx.AsyncClient(
        base_url=restored.http_url, headers={"X-Auth-Token": restored.token}
    ) as again:
        listed = {entry["device_id"] for entry in (await again.get("/devices")).json()}
        assert "before" in listed
        waiting = (await again.get("/devices/before/commands/next")).json()
        assert waiting is not None and waiting["id"] == queued["id"]


async def test_backup_of_a_missing_database_fails_clearly(tmp_path: Path) -> None:
    """No database at the path: exit status non-zero and a one-line reason, no file written."""
    result = await run_backup(str(tmp_path / "out.db"), "--db", str(tmp_path / "absent.db"))
    assert result.returncode != 0
    assert "no database at" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.db").exists()
