"""Alerts on PostgreSQL with two hubs sharing the database (DESIGN §11, §13): states and the
outbox live in PostgreSQL, and one hub at a time delivers, so nothing is sent twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.agentd import eventually
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.integration.test_alerts import CPU_RULE, Receiver, fast, ingest, setup
from tests.pg import pg_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh schema on the test PostgreSQL server."""
    async with pg_schema() as url:
        yield url


async def test_two_hubs_notify_once_and_a_restart_sends_nothing_twice(
    database: str, hub_factory: HubFactory
) -> None:
    """Rule and samples on hub A, hub B alive beside it: one firing and one resolved notification,
    also across a restart of A while firing."""
    a = await hub_factory(db=database, hub_heartbeat=0.5, hub_lost_after=3.0)
    b = await hub_factory(db=database, hub_heartbeat=0.5, hub_lost_after=3.0)
    fast(a)
    fast(b)
    receiver = Receiver()
    await receiver.start()
    try:
        async with httpx.AsyncClient(base_url=a.http_url, headers={"X-Auth-Token": a.token}) as api:
            await setup(api, receiver, **{**CPU_RULE, "for": 0})
            await ingest(api, "pg-1", 95)
            await eventually(lambda: _has(receiver, 1), within=15, what="the firing notification")
            await a.restart()
            fast(a)
        async with httpx.AsyncClient(base_url=a.http_url, headers={"X-Auth-Token": a.token}) as api:
            assert [x["state"] for x in (await api.get("/alerts")).json()["alerts"]] == ["firing"]
            await ingest(api, "pg-1", 96)
            await ingest(api, "pg-1", 10)
            await eventually(lambda: _has(receiver, 2), within=15, what="the resolved notification")
        assert receiver.statuses() == ["firing", "resolved"]
        await eventually(lambda: _delivered(a), within=5, what="the outbox marked delivered")
    finally:
        await receiver.close()


async def _delivered(hub: RunningHub) -> bool:
    return await hub.hub.store.pending_notifications() == []


async def _has(receiver: Receiver, count: int) -> bool:
    return len(receiver.bodies) >= count
