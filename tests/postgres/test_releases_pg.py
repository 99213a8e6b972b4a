"""Releases with two hubs on one PostgreSQL database (DESIGN §12, §13): a rollout posted on hub B
is offered by hub A to the agent it holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from monitor_server.releases_cli import keygen, publish
from tests.agents import connect_agent, next_frame
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
    frame = await next_frame(ws, "update", within=5)
    assert frame["sha256"] == signed["sha256"] and frame["url"] == "/releases/0.2.0/bundle"
    await ws.close()
