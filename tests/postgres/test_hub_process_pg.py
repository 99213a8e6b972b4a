"""``monitor-server`` on a PostgreSQL URL: it serves, and the URL's password never reaches its log."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.processes import HubProcess, free_port

TOKEN = "pg-process-token-77ab1"
PASSWORD = "not-in-any-log-4c2f"  # the server trusts local connections: only the log matters


async def test_hub_on_a_postgresql_url_masks_its_password(tmp_path: Path, pg_url: str) -> None:
    url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@", 1)
    hub = HubProcess(
        tmp_path / "hub" / "unused.db", free_port(), TOKEN, MONITOR_DB=url, MONITOR_LOG_LEVEL="debug"
    )
    hub.log_path.parent.mkdir(parents=True)
    await hub.start()
    try:
        async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}) as api:
            stored = await api.post(
                "/ingest", json={"device_id": "pg-proc", "cpu": 1.0, "ram": 2.0, "disk": 3.0}
            )
            assert stored.status_code == 200, stored.text
            assert (await api.get("/devices/pg-proc")).json()["device_id"] == "pg-proc"
    finally:
        hub.stop()
    log = hub.log_path.read_text()
    assert "postgresql://postgres:***@127.0.0.1" in log
    assert PASSWORD not in log
