"""Singletons across hubs (DESIGN §13): one hub at a time holds a job's advisory lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from monitor_server.cluster.notice import Notice
from monitor_server.cluster.postgres import PgCluster
from monitor_server.store import PresenceEvent, Store, open_store


async def _ignore(_notice: Notice) -> None:
    return None


async def _nothing() -> None:
    return None


def _no_takeover(_events: list[PresenceEvent]) -> None:
    return None


@pytest.fixture
async def clusters(pg_url: str) -> AsyncIterator[tuple[PgCluster, PgCluster]]:
    async with AsyncExitStack() as stack:
        store: Store = open_store(pg_url)
        await store.open()
        stack.push_async_callback(store.close)
        pair = []
        for _ in range(2):
            cluster = PgCluster(pg_url, store, heartbeat=0.5)
            await cluster.start(_ignore, _no_takeover, _nothing)
            stack.push_async_callback(cluster.stop)
            pair.append(cluster)
        yield pair[0], pair[1]


async def test_one_hub_at_a_time_runs_a_singleton(clusters: tuple[PgCluster, PgCluster]) -> None:
    a, b = clusters
    async with a.exclusive("retention") as a_runs:
        async with b.exclusive("retention") as b_runs:
            assert a_runs and not b_runs
        async with b.exclusive("expiry") as b_runs_another:
            assert b_runs_another  # another job's lock is free
    async with b.exclusive("retention") as b_runs:
        assert b_runs  # released when A's job ended


async def test_each_hub_sees_the_other_alive(clusters: tuple[PgCluster, PgCluster]) -> None:
    a, b = clusters
    assert a.hub_id is not None and b.hub_id is not None
    assert await a.other_hubs() == {b.hub_id}
    assert await b.other_hubs() == {a.hub_id}
