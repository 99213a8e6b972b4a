"""Names, tags and bulk commands (issue 16): ``PATCH /devices/{id}``, ``GET /devices?tag=``, the
agent's own tags from hello, ``POST /commands/bulk`` and its progress, and dashboards told."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from tests.agentd import device, eventually, spawn_agent
from tests.agents import next_frame, open_socket, send, ui_feed
from tests.hubs import RunningHub
from tests.timing import t

SAMPLE = {"cpu": 1.0, "ram": 2.0, "disk": 3.0, "uptime_sec": 4, "status": "ok"}


async def _seen(api: httpx.AsyncClient, *devices: str) -> None:
    for ident in devices:
        assert (await api.post("/ingest", json={**SAMPLE, "device_id": ident})).status_code == 200


async def _agent(hub: RunningHub, device_id: str, tags: list[str] | None = None) -> ClientConnection:
    ws = await open_socket(hub)
    hello: dict[str, Any] = {"type": "hello", "protocol": 1, "device_id": device_id, "capabilities": ["ping"]}
    if tags is not None:
        hello["tags"] = tags
    await send(ws, hello)
    assert (await next_frame(ws))["type"] == "welcome"
    return ws


async def _listed(api: httpx.AsyncClient, tag: str) -> list[str]:
    answer = await api.get("/devices", params={"tag": tag})
    assert answer.status_code == 200, answer.text
    return [d["device_id"] for d in answer.json()]


async def test_rename_and_tag_a_device(api: httpx.AsyncClient) -> None:
    """A name and tags are set, listed, filtered on, cleared, and audited; the id never changes."""
    await _seen(api, "web-1", "web-2")
    changed = await api.patch("/devices/web-1", json={"name": "Front web", "tags": ["env=prod", "rack-4"]})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["device_id"], body["name"], body["tags"]) == ("web-1", "Front web", ["env=prod", "rack-4"])
    detail = (await api.get("/devices/web-1")).json()
    assert (detail["name"], detail["tags"]) == ("Front web", ["env=prod", "rack-4"])
    assert await _listed(api, "rack-4") == ["web-1"]
    assert await _listed(api, "nothing") == []
    only_tags = await api.patch("/devices/web-1", json={"tags": ["rack-4"]})
    assert (only_tags.json()["name"], only_tags.json()["tags"]) == ("Front web", ["rack-4"])  # name kept
    cleared = await api.patch("/devices/web-1", json={"name": ""})
    assert cleared.json()["name"] is None and cleared.json()["tags"] == ["rack-4"]
    actions = [e["action"] for e in (await api.get("/audit")).json()["events"]]
    assert actions.count("device_updated") == 3


async def test_bad_updates_are_refused(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Unknown device 404; bad tag, unknown field or empty body 422; a viewer 403; nothing changed."""
    await _seen(api, "d1")
    assert (await api.patch("/devices/ghost", json={"name": "x"})).status_code == 404
    for body in ({"tags": ["no spaces"]}, {"tags": ["-lead"]}, {"colour": "red"}, {}, {"name": "x" * 129}):
        answer = await api.patch("/devices/d1", json=body)
        assert answer.status_code == 422 and "detail" in answer.json(), (body, answer.text)
    made = await api.post("/users", json={"name": "vic", "password": "vic-password", "role": "viewer"})
    assert made.status_code == 201
    key = await api.post("/api-keys", json={"name": "ro", "role": "viewer", "owner": "vic"})
    headers = {"Authorization": f"Bearer {key.json()['key']}"}
    async with httpx.AsyncClient(base_url=hub.http_url, headers=headers) as viewer:
        assert (await viewer.patch("/devices/d1", json={"name": "x"})).status_code == 403
        assert (await viewer.post("/commands/bulk", json={"command": "ping", "tag": "a"})).status_code == 403
    detail = (await api.get("/devices/d1")).json()
    assert (detail["name"], detail["tags"]) == (None, [])


async def test_agent_tags_come_from_hello(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """The tags in hello are shown beside the operators' ones, replaced at each hello, and filter."""
    agent = await _agent(hub, "db-1", ["role=db", "site/paris"])
    await api.patch("/devices/db-1", json={"tags": ["on-call"]})
    detail = (await api.get("/devices/db-1")).json()
    assert detail["tags"] == ["on-call", "role=db", "site/paris"]
    assert detail["agent_tags"] == ["role=db", "site/paris"]
    assert await _listed(api, "role=db") == ["db-1"]
    await agent.close()
    again = await _agent(hub, "db-1", ["role=db"])  # the agent's config changed
    assert (await api.get("/devices/db-1")).json()["tags"] == ["on-call", "role=db"]
    await again.close()


async def test_a_hello_with_a_bad_tag_is_refused(hub: RunningHub) -> None:
    """A tag outside the pattern makes the hello invalid: an error frame, no welcome."""
    ws = await open_socket(hub)
    await send(ws, {"type": "hello", "protocol": 1, "device_id": "bad-tags", "tags": ["has space"]})
    frame = await next_frame(ws)
    assert frame["type"] == "error" and "tags" in frame["message"], frame
    await ws.close()


async def _ack_commands(ws: ClientConnection, count: int) -> None:
    for _ in range(count):
        command = await next_frame(ws, "command")
        await send(ws, {"type": "ack", "id": command["id"], "success": command.get("args") is None})


async def test_bulk_command_to_listed_devices_and_its_progress(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Each listed agent gets the command pushed; the progress counts acked and failed as they come."""
    agents = [await _agent(hub, f"node-{i}") for i in range(3)]
    queued = await api.post(
        "/commands/bulk", json={"command": "ping", "devices": ["node-0", "node-1", "node-2", "node-0"]}
    )
    assert queued.status_code == 200, queued.text
    body = queued.json()
    assert body["total"] == 3 and body["command"] == "ping"  # node-0 once
    assert sorted(c["device_id"] for c in body["commands"]) == ["node-0", "node-1", "node-2"]
    await asyncio.gather(*(_ack_commands(ws, 1) for ws in agents))
    status = await _settled(api, body["id"], 3)
    assert status["counts"] == {
        "pending": 0, "delivered": 0, "acked": 3, "failed": 0, "expired": 0, "cancelled": 0
    }  # fmt: skip
    for ws in agents:
        await ws.close()


async def _settled(api: httpx.AsyncClient, bulk_id: str, acked: int) -> dict[str, Any]:
    """The bulk status once ``acked`` commands are acknowledged (acks are committed before ``acked``)."""

    async def answered() -> dict[str, Any]:
        status: dict[str, Any] = (await api.get(f"/commands/bulk/{bulk_id}")).json()
        return status if status["counts"]["acked"] + status["counts"]["failed"] >= acked else {}

    return await eventually(answered, within=5, what=f"{acked} parts of {bulk_id} acknowledged")


async def test_bulk_command_by_tag_is_idempotent_and_counts_failures(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """A tag selects its devices (offline ones wait pending); the same key again queues nothing."""
    online = [await _agent(hub, f"edge-{i}", ["edge"]) for i in range(2)]
    await _seen(api, "edge-offline", "core-1")
    await api.patch("/devices/edge-offline", json={"tags": ["edge"]})
    request = {"command": "echo", "args": {"x": 1}, "tag": "edge"}
    headers = {"Idempotency-Key": "rollout-42"}
    first = await api.post("/commands/bulk", json=request, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["id"] == "rollout-42" and first.json()["total"] == 3
    again = await api.post("/commands/bulk", json=request, headers=headers)
    assert again.json()["total"] == 3  # nothing queued twice
    await asyncio.gather(*(_ack_commands(ws, 1) for ws in online))  # args set: these agents fail it
    status = await _settled(api, "rollout-42", 2)
    assert (status["counts"]["failed"], status["counts"]["pending"]) == (2, 1)
    first = (await api.get("/commands/bulk/rollout-42", params={"limit": 2})).json()
    assert first["truncated"] is True and first["total"] == 3 and first["counts"] == status["counts"]
    assert [c["device_id"].startswith("edge-") and c["status"] for c in first["commands"]] == [
        "acked",
        "acked",
    ]
    assert all(c["success"] is False for c in first["commands"])  # the failed ones come first
    assert (await api.get("/commands/bulk/rollout-42", params={"limit": 0})).status_code == 422
    assert (await api.get("/commands/bulk/rollout-42")).json()["truncated"] is False
    assert (await api.get("/devices/core-1/commands")).json()["commands"] == []
    for ws in online:
        await ws.close()


async def test_bad_bulk_requests(api: httpx.AsyncClient) -> None:
    """Neither or both targets, an unused tag, a bad key or an unknown bulk id: 4xx with detail."""
    await _seen(api, "x1")
    for body in (
        {"command": "ping"},
        {"command": "ping", "tag": "a", "devices": ["x1"]},
        {"devices": ["x1"]},
    ):
        answer = await api.post("/commands/bulk", json=body)
        assert answer.status_code == 422 and "detail" in answer.json(), (body, answer.text)
    assert (await api.post("/commands/bulk", json={"command": "ping", "tag": "unused"})).status_code == 422
    bad_key = await api.post(
        "/commands/bulk", json={"command": "ping", "devices": ["x1"]}, headers={"Idempotency-Key": "a b"}
    )
    assert bad_key.status_code == 422
    assert (await api.get("/commands/bulk/nope")).status_code == 404
    assert (await api.get("/devices/x1/commands")).json()["commands"] == []


async def test_dashboards_hear_of_renames(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """/ws/ui gets ``{"type": "device", ...}`` with the new name and tags."""
    await _seen(api, "shown")
    async with ui_feed(hub) as (feed, _):
        assert (await api.patch("/devices/shown", json={"name": "Shown", "tags": ["t1"]})).status_code == 200
        async with asyncio.timeout(t(2)):
            while True:
                events = json.loads(await feed.recv()).get("events", [])
                found = [e for e in events if e.get("type") == "device" and e["device_id"] == "shown"]
                if found:
                    break
    assert (found[0]["name"], found[0]["tags"]) == ("Shown", ["t1"])


async def test_a_real_agent_reports_its_configured_tags(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """``monitor-agent run --tags`` puts its tags in hello: the hub lists the device under them."""
    agent = spawn_agent(hub, tmp_path / "state", "--device-id", "tagged-proc", "--tags", "env=prod,rack-4")
    try:

        async def tagged() -> list[str]:
            return await _listed(api, "rack-4")

        assert await eventually(tagged, what="the agent listed under its tag") == ["tagged-proc"]
        entry = await device(api, "tagged-proc")
        assert entry is not None and entry["agent_tags"] == ["env=prod", "rack-4"]
    finally:
        agent.terminate_all()


async def test_offered_commands_are_kept_while_the_agent_is_away(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """The commands of the last hello stay listed after the socket closes; never connected: null."""
    ws = await open_socket(hub)
    hello = {
        "type": "hello",
        "protocol": 1,
        "device_id": "cmds-1",
        "capabilities": ["stored_acks", "ping", "collect"],
    }
    await send(ws, hello)
    assert (await next_frame(ws))["type"] == "welcome"
    assert (await api.get("/devices/cmds-1")).json()["commands"] == ["collect", "ping"]
    await ws.close()

    async def offline() -> bool:
        return not (await api.get("/devices/cmds-1")).json()["online"]

    await eventually(offline, what="the device offline")
    assert (await api.get("/devices/cmds-1")).json()["commands"] == ["collect", "ping"]
    await _seen(api, "http-only")
    assert (await api.get("/devices/http-only")).json()["commands"] is None
