"""``DELETE /devices/{id}``: the device goes with its history and credential, its socket closes,
dashboards are told, and the removal is audited."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.agentd import eventually
from tests.agents import connect_agent, send, ui_feed
from tests.hubs import RunningHub
from tests.timing import t

SAMPLE = {"cpu": 1.0, "ram": 2.0, "disk": 3.0, "uptime_sec": 4, "status": "ok"}


async def _enroll(api: httpx.AsyncClient, device_id: str) -> str:
    """A fresh credential for ``device_id``."""
    made = await api.post("/enrollment-tokens", json={"expires_in": 60, "max_uses": 1})
    answer = await api.post("/enroll", json={"token": made.json()["token"], "device_id": device_id})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["credential"])


async def _history(api: httpx.AsyncClient, device_id: str) -> dict[str, Any]:
    """What the REST API still shows of the device."""
    base = f"/devices/{device_id}"
    return {
        "detail": (await api.get(base)).status_code,
        "listed": device_id in [d["device_id"] for d in (await api.get("/devices")).json()],
        "samples": len((await api.get(base + "/metrics")).json()["samples"]),
        "events": len((await api.get(base + "/events")).json()["events"]),
        "commands": len((await api.get(base + "/commands")).json()["commands"]),
        "credential": (await api.get(base + "/credential")).json()["credential"] is not None,
    }


async def test_removal_deletes_the_device_and_its_history(api: httpx.AsyncClient) -> None:
    """Samples, presence events, commands and the device row go; other devices stay; audited."""
    for device in ("gone", "kept"):
        for i in range(3):
            sample = {**SAMPLE, "device_id": device, "ts": 1_700_000_000 + i}
            assert (await api.post("/ingest", json=sample)).status_code == 200
        assert (await api.post(f"/devices/{device}/commands", json={"command": "ping"})).status_code == 200
    removed = await api.delete("/devices/gone")
    assert removed.status_code == 200, removed.text
    assert removed.json() == {
        "ok": True,
        "device_id": "gone",
        "samples": 3,
        "presence_events": 1,
        "commands": 1,
        "credential": False,
    }
    gone = {"detail": 404, "listed": False, "samples": 0, "events": 0, "commands": 0, "credential": False}
    assert await _history(api, "gone") == gone
    kept = {"detail": 200, "listed": True, "samples": 3, "events": 1, "commands": 1, "credential": False}
    assert await _history(api, "kept") == kept
    audit = (await api.get("/audit")).json()["events"]
    assert [(e["action"], e["target"]) for e in audit if e["action"] == "device_removed"] == [
        ("device_removed", "gone")
    ]


async def test_removing_an_unknown_device_is_404(api: httpx.AsyncClient) -> None:
    """An id the hub never saw (only a command queued for it), or removed already, answers 404."""
    assert (await api.post("/devices/never/commands", json={"command": "ping"})).status_code == 200
    assert (await api.delete("/devices/never")).status_code == 404
    assert len((await api.get("/devices/never/commands")).json()["commands"]) == 1
    assert (await api.post("/ingest", json={**SAMPLE, "device_id": "once"})).status_code == 200
    assert (await api.delete("/devices/once")).status_code == 200
    assert (await api.delete("/devices/once")).status_code == 404


async def test_removal_needs_the_admin_role(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """An operator's API key is refused (403) and the device stays."""
    assert (await api.post("/ingest", json={**SAMPLE, "device_id": "d1"})).status_code == 200
    made = await api.post("/users", json={"name": "opal", "password": "opal-password", "role": "operator"})
    assert made.status_code == 201
    key = await api.post("/api-keys", json={"name": "ops", "role": "operator", "owner": "opal"})
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    async with httpx.AsyncClient(base_url=hub.http_url, headers=headers) as operator:
        assert (await operator.delete("/devices/d1")).status_code == 403
    assert (await api.get("/devices/d1")).status_code == 200


async def test_removal_closes_the_socket_forgets_the_credential_and_tells_dashboards(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """A connected enrolled agent is closed with 4004, its credential dies, /ws/ui gets device_removed."""
    secret = await _enroll(api, "live")
    agent = await connect_agent(hub, "live", token=secret)
    await send(agent, {"type": "metrics", "seq": 1, "ts": 1_700_000_000, **SAMPLE})

    async def stored() -> list[Any]:
        return list((await api.get("/devices/live/metrics")).json()["samples"])

    await eventually(stored, what="the agent's sample stored")
    async with ui_feed(hub) as (feed, snapshot):
        assert "live" in [d["device_id"] for d in snapshot["devices"]]
        removed = await api.delete("/devices/live")
        assert removed.status_code == 200 and removed.json()["credential"] is True
        async with asyncio.timeout(t(2)):
            await agent.wait_closed()
            while True:
                frame = json.loads(await feed.recv())
                events = frame.get("events", [])
                if {"type": "device_removed", "device_id": "live"} in events:
                    break
    assert agent.close_code == 4004
    await asyncio.sleep(t(0.2))  # the socket's close records no presence transition afterwards
    gone = {"detail": 404, "listed": False, "samples": 0, "events": 0, "commands": 0, "credential": False}
    assert await _history(api, "live") == gone
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"Authorization": f"Bearer {secret}"}) as old:
        assert (await old.post("/ingest", json={**SAMPLE, "device_id": "live"})).status_code == 401
