"""Alerts end to end (DESIGN §11): a real hub, real samples and sockets, a real HTTP receiver.

The receiver is a small asyncio HTTP/1.1 server on a port of its own that records the bodies it
accepts; it can answer 500, or be closed (connection refused) and started again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor_server.alerts import service as alert_service
from tests.agentd import eventually
from tests.agents import connect_agent, send
from tests.hubs import RunningHub
from tests.processes import HubProcess, free_port
from tests.timing import t


class Receiver:
    """Records each body it answered 2xx to, with the time it came."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.status = 200
        self.bodies: list[dict[str, Any]] = []
        self.received_at: list[float] = []
        self.refused_or_failed = 0  # requests answered with an error status
        self.headers: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/s3cret-path"

    def statuses(self) -> list[str]:
        return [a["status"] for body in self.bodies for a in body["alerts"]]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop open connections: the hub now gets connection refused."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while request_line := await reader.readline():
                assert request_line.startswith(b"POST ")
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.status
                if 200 <= status < 300:
                    self.bodies.append(json.loads(body))
                    self.received_at.append(time.time())
                    self.headers.append(headers)
                else:
                    self.refused_or_failed += 1
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@contextlib.asynccontextmanager
async def started_receiver() -> AsyncIterator[Receiver]:
    """A started receiver, closed when the block ends."""
    started = Receiver()
    await started.start()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with started_receiver() as started:
        yield started


def fast(hub: RunningHub) -> None:
    """Short group wait and retries, so the tests take seconds (the defaults are 2 s and 1 s up to 300 s)."""
    alerts = hub.hub.alerts
    assert alerts is not None
    alerts.group_wait = 0.3
    alerts.delivery.retry_base = 0.2
    alerts.delivery.retry_max = 1.0


async def setup(api: httpx.AsyncClient, receiver: Receiver, **rule: Any) -> dict[str, Any]:
    hook = await api.post(
        "/notifiers",
        json={
            "name": "ops",
            "kind": "webhook",
            "url": receiver.url,
            "headers": {"Authorization": "Bearer t0k"},
        },
    )
    assert hook.status_code == 201, hook.text
    created = await api.post("/alert-rules", json=rule)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


CPU_RULE = {
    "name": "cpu high",
    "kind": "threshold",
    "metric": "cpu",
    "op": ">",
    "value": 90,
    "clear_value": 80,
    "for": 2,
    "severity": "critical",
}


async def ingest(api: httpx.AsyncClient, device: str, cpu: float) -> None:
    answer = await api.post("/ingest", json={"device_id": device, "cpu": cpu, "status": "ok"})
    assert answer.status_code == 200, answer.text


async def test_threshold_fires_once_resolves_once_and_does_not_flap(
    hub: RunningHub, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """cpu > 90 for 2 s: one firing notification in Alertmanager format; oscillating between the
    value and the clear value changes nothing; below the clear value: one resolved notification."""
    fast(hub)
    await setup(api, receiver, **CPU_RULE)
    crossed = time.time()
    await ingest(api, "web-1", 95)
    pending = (await api.get("/alerts")).json()["alerts"]
    assert [(a["device_id"], a["state"]) for a in pending] == [("web-1", "pending")]
    await eventually(lambda: _async(receiver.bodies), within=10, what="the firing notification")
    assert receiver.received_at[0] - crossed >= 2.0, "fired before `for` elapsed"
    body = receiver.bodies[0]
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "ops"
    assert body["groupKey"] and body["externalURL"].startswith("http://")
    (alert,) = body["alerts"]
    assert alert["labels"]["alertname"] == "cpu high" and alert["labels"]["device"] == "web-1"
    assert alert["labels"]["severity"] == "critical" and alert["status"] == "firing"
    assert (
        alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["startsAt"].endswith("Z") and alert["fingerprint"]
    )
    assert receiver.headers[0]["authorization"] == "Bearer t0k"
    firing = (await api.get("/alerts")).json()["alerts"]
    assert [(a["rule"], a["state"], a["silenced"]) for a in firing] == [("cpu high", "firing", False)]
    for cpu in (85, 95, 81, 99, 85):  # between clear (80) and value (90) and above: still firing
        await ingest(api, "web-1", cpu)
    await ingest(api, "web-1", 79)
    await eventually(lambda: _async(len(receiver.bodies) >= 2), within=10, what="the resolved notification")
    for cpu in (85, 79, 88, 70):  # from ok: below the value never fires
        await ingest(api, "web-1", cpu)
    await ingest(api, "web-2", 10)  # another device's samples: nothing
    assert receiver.statuses() == ["firing", "resolved"]
    resolved = receiver.bodies[1]["alerts"][0]
    assert resolved["fingerprint"] == alert["fingerprint"] and resolved["endsAt"] != "0001-01-01T00:00:00Z"
    assert (await api.get("/alerts")).json()["alerts"] == []


async def test_offline_rule_fires_after_for_and_resolves_when_back(
    hub: RunningHub, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """An offline rule with for 1: the agent's socket closes -> firing after 1 s; back -> resolved."""
    fast(hub)
    ws = await connect_agent(hub, "rack-7")
    await setup(api, receiver, name="gone", kind="offline", **{"for": 1}, selector={"devices": ["rack-7"]})
    await ws.close()
    closed = time.time()
    await eventually(lambda: _async(receiver.bodies), within=10, what="the firing notification")
    assert receiver.received_at[0] - closed >= 1.0
    assert receiver.bodies[0]["alerts"][0]["labels"] == {
        "alertname": "gone",
        "device": "rack-7",
        "severity": "warning",
        "kind": "offline",
    }
    ws = await connect_agent(hub, "rack-7")
    await eventually(lambda: _async(len(receiver.bodies) >= 2), within=10, what="the resolved notification")
    assert receiver.statuses() == ["firing", "resolved"]
    await ws.close()


async def test_receiver_down_then_failing_then_up_gets_everything_once_in_order(
    hub: RunningHub, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused, then 500s, then 200: every notification arrives exactly once, in order;
    the failures are logged without the notifier's URL path or headers."""
    caplog.set_level(logging.DEBUG, logger="monitor_server")
    fast(hub)
    receiver = Receiver(free_port())  # not listening yet: connection refused
    try:
        await _down_then_up(hub, api, receiver)
        assert "notification 1 failed" in caplog.text and "127.0.0.1" in caplog.text
        assert "s3cret" not in caplog.text and "t0k" not in caplog.text
    finally:
        await receiver.close()


async def _down_then_up(hub: RunningHub, api: httpx.AsyncClient, receiver: Receiver) -> None:
    await setup(api, receiver, **{**CPU_RULE, "for": 0})
    for n, cpu in enumerate((95, 50, 96, 40), start=1):  # firing, resolved, firing, resolved
        await ingest(api, "db-1", cpu)
        await eventually(lambda n=n: _queued(hub, n), within=10, what=f"notification {n} queued")
    await eventually(lambda: _attempted(hub), within=10, what="a refused attempt")
    receiver.status = 500
    await receiver.start()
    await eventually(lambda: _async(receiver.refused_or_failed >= 2), within=10, what="two 500s")
    receiver.status = 200
    await eventually(lambda: _async(len(receiver.bodies) >= 4), within=15, what="all four notifications")
    assert receiver.statuses() == ["firing", "resolved", "firing", "resolved"]
    starts = [body["alerts"][0]["startsAt"] for body in receiver.bodies]
    assert starts[0] == starts[1] and starts[2] == starts[3] and starts[1] < starts[2]
    await eventually(lambda: _nothing_pending(hub), within=5, what="the outbox marked delivered")
    await ingest(api, "db-1", 97)  # one more firing: it is the fifth body, so nothing came twice
    await eventually(lambda: _async(len(receiver.bodies) >= 5), within=10, what="the fifth notification")
    assert receiver.statuses() == ["firing", "resolved", "firing", "resolved", "firing"]


async def test_restart_while_firing_and_while_queued_sends_nothing_twice(
    hub: RunningHub, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A hub restart with a notification in the outbox delivers it once; a firing alert stays firing
    across the restart without a second firing notification, and resolves once."""
    fast(hub)
    receiver.status = 500  # the notification stays in the outbox
    await setup(api, receiver, **{**CPU_RULE, "for": 0})
    await ingest(api, "app-1", 95)
    await eventually(lambda: _attempted(hub), within=10, what="a failed delivery attempt")
    await hub.restart()
    fast(hub)
    receiver.status = 200
    await eventually(lambda: _async(receiver.bodies), within=15, what="the queued notification")
    firing = (await api.get("/alerts")).json()["alerts"]
    assert [(a["device_id"], a["state"]) for a in firing] == [("app-1", "firing")]
    await hub.restart()  # firing and notified: nothing owed
    fast(hub)
    await ingest(api, "app-1", 99)
    await ingest(api, "app-1", 10)
    await eventually(lambda: _async(len(receiver.bodies) >= 2), within=10, what="the resolved notification")
    assert receiver.statuses() == ["firing", "resolved"]


async def test_silence_holds_notifications_and_its_end_releases_those_still_firing(
    hub: RunningHub, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """While silenced nothing is sent; at its end the alert still firing is sent, the one that
    fired and resolved meanwhile is not."""
    fast(hub)
    await setup(api, receiver, **{**CPU_RULE, "for": 0})
    ends_at = time.time() + 2.0
    for device in ("s-1", "s-2"):
        made = await api.post(
            "/silences", json={"matchers": {"device": device}, "ends_at": ends_at, "comment": "maintenance"}
        )
        assert made.status_code == 201, made.text
    assert made.json()["created_by"] and made.json()["comment"] == "maintenance"
    await ingest(api, "s-1", 95)
    await ingest(api, "s-2", 95)
    alerts = (await api.get("/alerts")).json()["alerts"]
    assert [(a["device_id"], a["silenced"]) for a in alerts] == [("s-1", True), ("s-2", True)]
    await ingest(api, "s-2", 10)  # resolved while silenced: its firing was never sent
    await eventually(lambda: _async(receiver.bodies), within=10, what="the released notification")
    assert receiver.received_at[0] >= ends_at
    assert receiver.statuses() == ["firing"] and receiver.bodies[0]["alerts"][0]["labels"]["device"] == "s-1"
    assert (await api.get("/silences")).json()["silences"] == []


async def test_deleting_a_silence_releases_at_once(
    hub: RunningHub, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """An operator ending a silence early (DELETE) releases the held notification."""
    fast(hub)
    rule = await setup(api, receiver, **{**CPU_RULE, "for": 0})
    made = await api.post("/silences", json={"matchers": {"rule": "cpu high"}, "ends_at": time.time() + 3600})
    await ingest(api, "m-1", 95)
    alerts = await eventually(lambda: _alerts(api), within=5, what="the alert")
    assert alerts[0]["silenced"] is True and alerts[0]["rule_id"] == rule["id"]
    assert (await api.delete(f"/silences/{made.json()['id']}")).json() == {
        "ok": True,
        "id": made.json()["id"],
    }
    await eventually(lambda: _async(receiver.bodies), within=10, what="the released notification")
    assert receiver.statuses() == ["firing"]


async def test_an_alert_still_firing_is_notified_again_after_the_repeat_interval(
    hub: RunningHub, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """With a repeat interval of 1 s an alert still firing is sent again, then resolved once."""
    fast(hub)
    assert hub.hub.alerts is not None
    hub.hub.alerts.repeat_interval = 1.0
    await setup(api, receiver, **{**CPU_RULE, "for": 0})
    await ingest(api, "rep-1", 95)
    await eventually(lambda: _async(len(receiver.bodies) >= 2), within=10, what="the repeated notification")
    assert receiver.received_at[1] - receiver.received_at[0] >= 1.0
    hub.hub.alerts.repeat_interval = 0
    await ingest(api, "rep-1", 10)
    await eventually(lambda: _async("resolved" in receiver.statuses()), within=10, what="the resolved one")
    assert receiver.statuses()[-1] == "resolved" and set(receiver.statuses()[:-1]) == {"firing"}


async def test_a_tag_rule_covers_a_device_tagged_before_it_connects(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Tags are read again when a device comes online: a rule selecting a tag fires for it."""
    assert (await api.post("/ingest", json={"device_id": "tag-1", "cpu": 1})).status_code == 200
    assert (await api.patch("/devices/tag-1", json={"tags": ["db"]})).status_code == 200
    rule = {**CPU_RULE, "for": 0, "selector": {"tags": ["db"]}}
    assert (await api.post("/alert-rules", json=rule)).status_code == 201
    ws = await connect_agent(hub, "tag-1")

    async def fires() -> list[dict[str, Any]]:
        await send(ws, {"type": "metrics", "cpu": 97.0})
        return await _alerts(api)

    alerts = await eventually(fires, within=10, what="the tag rule firing")
    assert [(a["device_id"], a["state"]) for a in alerts] == [("tag-1", "firing")]
    await ws.close()


async def test_rest_checks_bodies_and_never_shows_a_notifier_url(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Bad rules and notifiers get 422 with a detail, names are unique (409), URLs come back redacted."""
    bad_rules = [
        {"name": "x", "kind": "threshold", "metric": "cpu", "op": ">"},  # no value
        {"name": "x", "kind": "threshold", "metric": "cpu", "op": ">", "value": 90, "clear_value": 95},
        {"name": "x", "kind": "offline", "metric": "cpu"},
        {"name": "x", "kind": "threshold", "metric": "cpu", "op": "~", "value": 1},
        {"name": "x", "kind": "offline", "for": -1},
        {"name": "", "kind": "offline"},
    ]
    for rule in bad_rules:
        answer = await api.post("/alert-rules", json=rule)
        assert answer.status_code == 422 and answer.json()["detail"], rule
    url = "https://user:pw@hooks.example.com/services/T0/B0/s3cret?token=abc"
    made = await api.post("/notifiers", json={"name": "slack", "kind": "webhook", "url": url})
    assert made.status_code == 201
    listed = (await api.get("/notifiers")).json()["notifiers"]
    assert listed[0]["url"] == "https://hooks.example.com/..." and "s3cret" not in json.dumps(listed)
    assert (
        await api.post("/notifiers", json={"name": "slack", "kind": "webhook", "url": url})
    ).status_code == 409
    assert (
        await api.post("/notifiers", json={"name": "n", "kind": "webhook", "url": "ftp://x"})
    ).status_code == 422
    rule = (await api.post("/alert-rules", json=CPU_RULE)).json()
    assert (await api.post("/alert-rules", json=CPU_RULE)).status_code == 409
    changed = await api.patch(f"/alert-rules/{rule['id']}", json={"value": 95, "for": 10})
    assert changed.status_code == 200 and (changed.json()["value"], changed.json()["for"]) == (95, 10)
    assert (await api.patch(f"/alert-rules/{rule['id']}", json={"clear_value": 99})).status_code == 422
    assert (await api.get(f"/alert-rules/{rule['id']}")).json()["clear_value"] == 80
    assert (await api.delete(f"/alert-rules/{rule['id']}")).status_code == 200
    assert (await api.get(f"/alert-rules/{rule['id']}")).status_code == 404
    past = await api.post("/silences", json={"matchers": {"device": "d"}, "ends_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422
    assert (
        await api.post("/silences", json={"matchers": {}, "ends_at": time.time() + 60})
    ).status_code == 422


async def test_latency_for_zero(hub: RunningHub, api: httpx.AsyncClient, receiver: Receiver) -> None:
    """With ``for: 0`` and the default group wait (2 s) the receiver has the notification in about 2 s."""
    await setup(api, receiver, **{**CPU_RULE, "for": 0})
    crossed = time.time()
    await ingest(api, "lat-1", 95)
    await eventually(lambda: _async(receiver.bodies), within=10, what="the notification")
    latency = receiver.received_at[0] - crossed
    print(f"alert latency (for 0, group_wait 2 s): {latency * 1000:.0f} ms")
    assert 2.0 <= latency < 2.0 + t(2.0)


async def _async(value: Any) -> Any:
    return value


async def _alerts(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = (await api.get("/alerts")).json()["alerts"]
    return alerts


async def _queued(hub: RunningHub, count: int) -> bool:
    """``count`` notifications are in the outbox (delivered or not)."""
    pending = await hub.hub.store.pending_notifications()
    return len(pending) >= count


async def _nothing_pending(hub: RunningHub) -> bool:
    return await hub.hub.store.pending_notifications() == []


async def _attempted(hub: RunningHub) -> bool:
    pending = await hub.hub.store.pending_notifications()
    return bool(pending) and pending[0].attempts >= 1


async def test_hub_killed_mid_group_and_mid_delivery_sends_everything_once(tmp_path: Path) -> None:
    """kill -9 after a firing transition is stored but before its group went out, and again while a
    resolved notification waits in the outbox: after each restart, every notification once."""
    receiver = Receiver()
    await receiver.start()
    hub = HubProcess(tmp_path / "data" / "monitor.db", free_port(), "kill-token-5e1b9c")
    hub.db.parent.mkdir()
    try:
        await hub.start()
        async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
            await setup(api, receiver, **{**CPU_RULE, "for": 0})
            await ingest(api, "k-1", 95)
            await eventually(
                lambda: _stored_state(hub.db, "firing"), within=2, what="the firing state stored"
            )
            hub.kill()  # within the 2 s group wait: nothing queued yet
            assert receiver.bodies == []
            await hub.start()
            await eventually(lambda: _async(receiver.bodies), within=15, what="the owed firing notification")
            receiver.status = 500
            await ingest(api, "k-1", 10)
            await eventually(lambda: _async(receiver.refused_or_failed), within=15, what="a failed attempt")
            hub.kill()
            receiver.status = 200
            await hub.start()
            await eventually(lambda: _async(len(receiver.bodies) >= 2), within=20, what="the resolved one")
            await ingest(api, "k-2", 99)  # a later notification: anything sent twice would come before it
            await eventually(lambda: _async(len(receiver.bodies) >= 3), within=15, what="k-2's notification")
        assert receiver.statuses() == ["firing", "resolved", "firing"]
        assert [b["alerts"][0]["labels"]["device"] for b in receiver.bodies] == ["k-1", "k-1", "k-2"]
    finally:
        hub.stop()
        await receiver.close()


async def _stored_state(db: Path, state: str) -> bool:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            rows = conn.execute("SELECT state FROM alert_states").fetchall()
        except sqlite3.OperationalError:
            return False
    return [row[0] for row in rows] == [state]


async def test_a_removed_devices_alerts_are_forgotten_also_after_a_restart(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """DELETE /devices/{id}: its alerts leave GET /alerts and the store, so a restart does not
    bring them back."""
    fast(hub)
    assert (await api.post("/alert-rules", json={**CPU_RULE, "for": 0})).status_code == 201
    await ingest(api, "gone-1", 95)
    await ingest(api, "kept-1", 95)
    assert [a["device_id"] for a in await _alerts(api)] == ["gone-1", "kept-1"]
    assert (await api.delete("/devices/gone-1")).status_code == 200
    assert [a["device_id"] for a in await _alerts(api)] == ["kept-1"]
    await eventually(lambda: _stored_devices(hub, ["kept-1"]), within=5, what="gone-1's states deleted")
    await hub.restart()
    assert [a["device_id"] for a in await _alerts(api)] == ["kept-1"]


async def _stored_devices(hub: RunningHub, devices: list[str]) -> bool:
    return [s.device_id for s in await hub.hub.store.list_alert_states()] == devices


async def test_a_short_pending_run_is_not_stored_a_long_one_is_and_survives_a_restart(
    hub: RunningHub, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state is stored once pending for ``PENDING_STORED_AFTER``: a pending run that ends sooner is
    never written (the store holds what came before it), a longer one is, and a stop stores the rest,
    so the pending run goes on, ``since`` and all, after a restart."""
    monkeypatch.setattr(alert_service, "PENDING_STORED_AFTER", 1.0)
    assert (await api.post("/alert-rules", json={**CPU_RULE, "for": 300})).status_code == 201
    await ingest(api, "short-1", 95)
    assert [(a["device_id"], a["state"]) for a in await _alerts(api)] == [("short-1", "pending")]
    await ingest(api, "short-1", 10)  # back to ok before it was stored
    assert await _alerts(api) == []
    await ingest(api, "long-1", 95)
    # Stored oldest first: once long-1's pending state is in the store, short-1's would be too.
    await eventually(lambda: _stored(hub, {"long-1": "pending"}), within=5, what="long-1 stored")
    await ingest(api, "young-1", 95)  # pending for less than a second when the hub stops
    before = {a["device_id"]: a["since"] for a in await _alerts(api)}
    await hub.restart()
    assert await _stored(hub, {"long-1": "pending", "young-1": "pending"})
    assert {a["device_id"]: a["since"] for a in await _alerts(api)} == before
    await ingest(api, "long-1", 10)  # a stored pending state's end is stored
    await eventually(lambda: _stored(hub, {"long-1": "ok", "young-1": "pending"}), within=5, what="ok")


async def _stored(hub: RunningHub, states: dict[str, str]) -> bool:
    return {s.device_id: s.state for s in await hub.hub.store.list_alert_states()} == states


async def test_an_offline_rules_pending_state_is_stored_at_once(
    hub: RunningHub, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a metric rule's pending state waits ``PENDING_STORED_AFTER``: an offline rule's follows
    presence and is stored as it starts, so a restart keeps when the device went away."""
    monkeypatch.setattr(alert_service, "PENDING_STORED_AFTER", 3600.0)
    away = {"devices": ["away-1", "away-2"]}
    assert (
        await api.post("/alert-rules", json={"name": "gone", "kind": "offline", "for": 300, "selector": away})
    ).status_code == 201
    assert (await api.post("/alert-rules", json={**CPU_RULE, "for": 300})).status_code == 201
    first, second = await connect_agent(hub, "away-1"), await connect_agent(hub, "away-2")
    await first.close()
    await eventually(lambda: _stored(hub, {"away-1": "pending"}), within=5, what="away-1's pending state")
    await ingest(api, "hot-1", 95)
    await second.close()  # stored after hot-1 went pending: hot-1's would be stored by then too
    await eventually(
        lambda: _stored(hub, {"away-1": "pending", "away-2": "pending"}), within=5, what="away-2's"
    )
    pending = {a["device_id"]: a["state"] for a in await _alerts(api)}
    assert pending == {"away-1": "pending", "away-2": "pending", "hot-1": "pending"}
