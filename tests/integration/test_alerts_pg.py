"""Alerts on PostgreSQL with two hubs sharing the database (DESIGN §11, §13): states and the
outbox live in PostgreSQL, and one hub at a time delivers, so nothing is sent twice."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from monitor_server.alerts.service import RELOAD
from tests.agentd import eventually
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.integration.test_alerts import CPU_RULE, Receiver, _async, fast, ingest, setup
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


async def test_rules_and_silences_changed_on_one_hub_act_on_the_other_at_once(
    database: str, hub_factory: HubFactory
) -> None:
    """Hub A's periodic reload is switched off: a rule and a silence created on hub B reach A by
    the alert_config notice; A's device fires, held by B's silence, and both hubs list it (GET
    /alerts reads every hub's); B ending the silence releases A's notification; B deleting the
    rule drops it on A."""
    a = await hub_factory(db=database, hub_heartbeat=0.5, hub_lost_after=3.0)
    b = await hub_factory(db=database, hub_heartbeat=0.5, hub_lost_after=3.0)
    fast(a)
    fast(b)
    service = a.hub.alerts
    assert service is not None
    service.reload_interval = 3600.0  # only the notice can bring B's changes now
    receiver = Receiver()
    await receiver.start()
    try:
        async with _client(a) as on_a, _client(b) as on_b:
            started = time.monotonic()
            rule = await setup(on_b, receiver, **{**CPU_RULE, "for": 0})
            await eventually(
                lambda: _async(rule["id"] in service.evaluator.rules), within=5, what="B's rule on A"
            )
            made = await on_b.post(
                "/silences", json={"matchers": {"device": "pg-3"}, "ends_at": time.time() + 3600}
            )
            assert made.status_code == 201, made.text
            told = time.monotonic()
            await eventually(lambda: _async(service.silences), within=5, what="B's silence on A")
            print(
                f"alert_config notice: B's silence held on A {(time.monotonic() - told) * 1000:.0f} ms later"
            )
            assert time.monotonic() - started < RELOAD

            await ingest(on_a, "pg-3", 95)
            shown = [("pg-3", "firing", True)]
            assert _shown(await _alerts(on_a)) == shown
            await eventually(lambda: _listed(on_b, shown), within=5, what="A's alert listed by B")
            assert [a["rule"] for a in await _alerts(on_b)] == ["cpu high"]

            ended = time.monotonic()
            assert (await on_b.delete(f"/silences/{made.json()['id']}")).status_code == 200
            await eventually(lambda: _async(receiver.bodies), within=5, what="the released notification")
            assert time.monotonic() - ended < RELOAD
            assert receiver.statuses() == ["firing"]
            assert receiver.bodies[0]["alerts"][0]["labels"]["device"] == "pg-3"
            await eventually(lambda: _listed(on_b, [("pg-3", "firing", False)]), within=5, what="unsilenced")

            assert (await on_b.delete(f"/alert-rules/{rule['id']}")).status_code == 200
            await eventually(lambda: _async(not service.evaluator.rules), within=5, what="the rule gone on A")
            assert await _alerts(on_a) == [] and await _alerts(on_b) == []
    finally:
        await receiver.close()


def _client(hub: RunningHub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token})


async def _alerts(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await api.get("/alerts")
    assert answer.status_code == 200, answer.text
    alerts: list[dict[str, Any]] = answer.json()["alerts"]
    return alerts


def _shown(alerts: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    return [(a["device_id"], a["state"], a["silenced"]) for a in alerts]


async def _listed(api: httpx.AsyncClient, expected: list[tuple[str, str, bool]]) -> bool:
    return _shown(await _alerts(api)) == expected


async def _delivered(hub: RunningHub) -> bool:
    return await hub.hub.store.pending_notifications() == []


async def _has(receiver: Receiver, count: int) -> bool:
    return len(receiver.bodies) >= count
