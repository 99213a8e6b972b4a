"""A first-seen HTTP device goes online in its first sample's transaction, not in one of its own
(PostgreSQL's transaction ids show it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from tests.hubs import TOKEN, RunningHub

TRIGGERS = """
CREATE TABLE written (what text, device_id text, tx bigint);
CREATE FUNCTION note_tx() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO written VALUES (TG_TABLE_NAME, NEW.device_id, txid_current());
    RETURN NEW;
END $$;
CREATE TRIGGER samples_tx AFTER INSERT ON samples FOR EACH ROW EXECUTE FUNCTION note_tx();
CREATE TRIGGER presence_tx AFTER INSERT ON presence_events FOR EACH ROW EXECUTE FUNCTION note_tx();
"""


async def test_first_seen_devices_go_online_with_their_first_sample(tmp_path: Path, pg_url: str) -> None:
    hub = RunningHub(tmp_path / "unused.db", db=pg_url)
    await hub.start()
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(TRIGGERS)
            async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}) as api:
                answers = await asyncio.gather(
                    *(api.post("/ingest", json={"device_id": f"new-{i}", "cpu": 1.0}) for i in range(8))
                )
                assert [a.status_code for a in answers] == [200] * 8
                devices = {d["device_id"]: d for d in (await api.get("/devices")).json()}
            rows = await conn.fetch("SELECT what, device_id, tx FROM written ORDER BY device_id, what")
        finally:
            await conn.close()
    finally:
        await hub.stop()
    txs: dict[str, dict[str, int]] = {}
    for row in rows:
        txs.setdefault(row["device_id"], {})[row["what"]] = row["tx"]
    assert sorted(txs) == [f"new-{i}" for i in range(8)]
    for device_id, written in txs.items():
        assert written["samples"] == written["presence_events"], device_id
        assert devices[device_id]["online"] is True
