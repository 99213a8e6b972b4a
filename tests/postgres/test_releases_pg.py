"""Releases with two hubs on one PostgreSQL database (DESIGN §12, §13): a rollout posted on hub B
is offered by hub A to the agent it holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from monitor_server.releases_cli import keygen, publish
from tests.agentd import eventually
from tests.agents import connect_agent, next_frame, send
from tests.conftest import HubFactory
from tests.integration.test_releases import make_bundle

FAST = {"hub_heartbeat": 0.5, "hub_lost_after": 3.0, "ping_interval": 1.0, "ping_timeout": 1.0}


async def test_rollout_posted_on_b_is_offered_by_a(
    pg_url: str, hub_factory: HubFactory, tmp_path: Path
) -> None:
    """The agent on hub A gets the update frame of a rollout posted on hub B."""
    a = await hub_factory(db=pg_url, **FAST)
    b = await hub_factory(db=pg_url, **FAST)
    key, _ = keygen(tmp_path / "keys")
    signed = await asyncio.to_thread(publish, make_bundle(tmp_path, "0.2.0"), key, pg_url, "test")
    ws = await connect_agent(a, "pg-upd-1", ["ping", "updates"])
    async with httpx.AsyncClient(base_url=b.http_url, headers={"X-Auth-Token": b.token}) as api:
        answer = await api.post("/releases/0.2.0/rollout", json={"devices": ["pg-upd-1"]})
        assert answer.status_code == 201 and answer.json()["offered"] == 0  # not B's agent
        audit = (await api.get("/audit")).json()["events"]  # publish is audited on PostgreSQL too
        published = [
            (e["actor_kind"], e["actor"], e["target"]) for e in audit if e["action"] == "release_published"
        ]
        assert published == [("cli", "test", "0.2.0")], audit
    frame = await next_frame(ws, "update", within=5)
    assert frame["sha256"] == signed["sha256"] and frame["url"] == "/releases/0.2.0/bundle"
    await ws.close()


async def test_a_pause_on_a_reaches_b(pg_url: str, hub_factory: HubFactory, tmp_path: Path) -> None:
    """A rollout paused by a failure reported on hub A is not offered by hub B at hello."""
    a = await hub_factory(db=pg_url, **FAST)
    b = await hub_factory(db=pg_url, **FAST)
    key, _ = keygen(tmp_path / "keys")
    await asyncio.to_thread(publish, make_bundle(tmp_path, "0.2.0"), key, pg_url, "test")
    ws = await connect_agent(a, "pg-upd-2", ["ping", "updates"])
    async with httpx.AsyncClient(base_url=b.http_url, headers={"X-Auth-Token": b.token}) as api:
        await api.post("/releases/0.2.0/rollout", json={"percent": 100})
        await next_frame(ws, "update", within=5)
        await send(ws, {"type": "update_status", "version": "0.2.0", "state": "rolled_back", "reason": "x"})

        async def paused() -> bool:
            return bool((await api.get("/releases/0.2.0")).json()["rollout"]["paused"])

        await eventually(paused, 5, "paused")

        async def b_knows() -> bool:
            return "0.2.0" in b.hub.releases.paused_versions()

        await eventually(b_knows, 5, "hub B's rollouts reloaded")
    other = await connect_agent(b, "pg-upd-3", ["ping", "updates"])
    with pytest.raises(TimeoutError):
        await next_frame(other, "update", within=0.5)
    await ws.close()
    await other.close()
