"""Alert routing and timing settings (issue 14), end to end: a real hub, real samples, real local
HTTP receivers. A rule naming notifiers goes to those only; one naming none goes to every notifier;
the group wait and repeat interval come from MONITOR_ALERT_GROUP_WAIT and
MONITOR_ALERT_REPEAT_INTERVAL."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from monitor_server.settings import Settings
from tests.agentd import eventually
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.integration.test_alerts import CPU_RULE, Receiver, _async, _nothing_pending
from tests.timing import t


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    ops, pager = Receiver(), Receiver()
    await ops.start()
    await pager.start()
    try:
        yield ops, pager
    finally:
        await ops.close()
        await pager.close()


def _client(hub: RunningHub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token})


async def _notifier(api: httpx.AsyncClient, name: str, receiver: Receiver) -> dict[str, Any]:
    made = await api.post("/notifiers", json={"name": name, "kind": "webhook", "url": receiver.url})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _names(receiver: Receiver, index: int) -> list[tuple[str, str]]:
    return sorted((a["labels"]["alertname"], a["status"]) for a in receiver.bodies[index]["alerts"])


async def test_a_rule_goes_to_the_notifiers_it_names(
    hub_factory: HubFactory, receivers: tuple[Receiver, Receiver]
) -> None:
    """cpu high -> pager (by name), disk full -> everyone: pager gets both in one body, ops only disk
    full. Re-routed to ops by PATCH, cpu high's resolved goes to ops alone. Unknown notifiers are
    422; a notifier a rule routes to is not deleted (409)."""
    ops_receiver, pager_receiver = receivers
    hub = await hub_factory(alert_group_wait=0.3)
    assert hub.hub.alerts is not None and hub.hub.alerts.group_wait == 0.3
    async with _client(hub) as api:
        ops = await _notifier(api, "ops", ops_receiver)
        pager = await _notifier(api, "pager", pager_receiver)
        for unknown in (["nobody"], [ops["id"], 987654], ["ops", "nobody"]):
            refused = await api.post("/alert-rules", json={**CPU_RULE, "notifiers": unknown})
            assert refused.status_code == 422, refused.text
            assert (
                "unknown notifier" in refused.json()["detail"]
                and str(unknown[-1]) in refused.json()["detail"]
            )
        cpu = await api.post("/alert-rules", json={**CPU_RULE, "for": 0, "notifiers": ["pager", pager["id"]]})
        assert cpu.status_code == 201, cpu.text
        assert cpu.json()["notifiers"] == [pager["id"]]
        disk = {**CPU_RULE, "name": "disk full", "metric": "disk", "for": 0}
        assert (await api.post("/alert-rules", json=disk)).json()["notifiers"] == []

        answer = await api.post("/ingest", json={"device_id": "r-1", "cpu": 95, "disk": 95})
        assert answer.status_code == 200, answer.text
        await eventually(lambda: _async(pager_receiver.bodies), within=10, what="pager's notification")
        await eventually(lambda: _async(ops_receiver.bodies), within=10, what="ops' notification")
        assert _names(pager_receiver, 0) == [("cpu high", "firing"), ("disk full", "firing")]
        assert _names(ops_receiver, 0) == [("disk full", "firing")]
        assert pager_receiver.bodies[0]["receiver"] == "pager" and ops_receiver.bodies[0]["receiver"] == "ops"

        moved = await api.patch(f"/alert-rules/{cpu.json()['id']}", json={"notifiers": [ops["id"]]})
        assert moved.status_code == 200 and moved.json()["notifiers"] == [ops["id"]], moved.text
        assert (
            await api.patch(f"/alert-rules/{cpu.json()['id']}", json={"notifiers": ["x"]})
        ).status_code == 422
        await api.post("/ingest", json={"device_id": "r-1", "cpu": 10, "disk": 95})
        await eventually(lambda: _async(len(ops_receiver.bodies) >= 2), within=10, what="the resolved one")
        await eventually(lambda: _nothing_pending(hub), within=5, what="the outbox delivered")
        assert _names(ops_receiver, 1) == [("cpu high", "resolved")]
        assert len(pager_receiver.bodies) == 1

        busy = await api.delete(f"/notifiers/{ops['id']}")
        assert busy.status_code == 409 and "cpu high" in busy.json()["detail"]
        everyone = await api.patch(f"/alert-rules/{cpu.json()['id']}", json={"notifiers": None})
        assert everyone.status_code == 200 and everyone.json()["notifiers"] == []
        assert (await api.delete(f"/notifiers/{ops['id']}")).status_code == 200
        assert (await api.delete(f"/notifiers/{pager['id']}")).status_code == 200


@contextlib.asynccontextmanager
async def _cpu_rule_hub(
    hub_factory: HubFactory, **settings: float
) -> AsyncIterator[tuple[RunningHub, httpx.AsyncClient, Receiver]]:
    """A hub with these settings, a receiver as its notifier "ops", and the cpu rule with ``for`` 0."""
    hub = await hub_factory(**settings)
    receiver = Receiver()
    await receiver.start()
    try:
        async with _client(hub) as api:
            await _notifier(api, "ops", receiver)
            assert (await api.post("/alert-rules", json={**CPU_RULE, "for": 0})).status_code == 201
            yield hub, api, receiver
    finally:
        await receiver.close()


async def test_group_wait_and_repeat_interval_are_settings(hub_factory: HubFactory) -> None:
    """MONITOR_ALERT_GROUP_WAIT 0.2 s: the firing notification comes well before the default 2 s;
    MONITOR_ALERT_REPEAT_INTERVAL 1 s: it comes again a second later."""
    async with _cpu_rule_hub(hub_factory, alert_group_wait=0.2, alert_repeat_interval=1.0) as (
        _,
        api,
        receiver,
    ):
        crossed = time.time()
        await api.post("/ingest", json={"device_id": "rep-1", "cpu": 95})
        await eventually(lambda: _async(len(receiver.bodies) >= 2), within=10, what="the repeat")
    assert 0.2 <= receiver.received_at[0] - crossed < 0.2 + t(1.5)
    assert receiver.received_at[1] - receiver.received_at[0] >= 1.0
    assert receiver.statuses()[:2] == ["firing", "firing"]


async def test_a_firing_alert_is_repeated_after_a_restart_on_its_schedule(hub_factory: HubFactory) -> None:
    """The repeat of an alert notified before a restart comes a repeat interval after that
    notification, from the restarted hub (its schedule is rebuilt from the stored states)."""
    async with _cpu_rule_hub(hub_factory, alert_group_wait=0.2, alert_repeat_interval=2.0) as (
        hub,
        api,
        receiver,
    ):
        await api.post("/ingest", json={"device_id": "rep-2", "cpu": 95})
        await eventually(lambda: _async(receiver.bodies), within=10, what="the firing notification")
        await hub.restart()
        await eventually(lambda: _async(len(receiver.bodies) >= 2), within=10, what="the repeat")
    assert receiver.received_at[1] - receiver.received_at[0] >= 2.0
    assert receiver.statuses() == ["firing", "firing"]


def test_alert_timing_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults (2 s, 4 h), the environment variables, 0 = never repeat, no negative values."""
    defaults = Settings()
    assert (defaults.alert_group_wait, defaults.alert_repeat_interval) == (2.0, 14400.0)
    monkeypatch.setenv("MONITOR_ALERT_GROUP_WAIT", "0.5")
    monkeypatch.setenv("MONITOR_ALERT_REPEAT_INTERVAL", "0")
    assert (Settings().alert_group_wait, Settings().alert_repeat_interval) == (0.5, 0.0)
    monkeypatch.setenv("MONITOR_ALERT_REPEAT_INTERVAL", "-1")
    with pytest.raises(ValidationError):
        Settings()
