"""The seed README's REST contract, with the original agent's payloads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from tests.conftest import HubFactory
from tests.hubs import RunningHub

SEED_PAYLOAD = {
    "device_id": "demo-001",
    "hostname": "demo-host",
    "cpu": 12.5,
    "ram": 40.0,
    "disk": 61.2,
    "uptime_sec": 3600,
    "agent_version": "1.0.0",
    "status": "ok",
    "last_error": "",
}


async def test_seed_curl_sequence(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """health, ingest, devices, enqueue, next, ack, next -> null: as the seed README shows."""
    health = await api.get("/health", headers={"X-Auth-Token": ""})
    assert health.status_code == 200 and health.json()["ok"] is True

    ingest = await api.post("/ingest", json=SEED_PAYLOAD)
    assert ingest.status_code == 200
    assert ingest.json()["ok"] is True and ingest.json()["ts_utc"]

    devices = (await api.get("/devices")).json()
    assert isinstance(devices, list)
    (device,) = devices
    assert device["device_id"] == "demo-001" and device["hostname"] == "demo-host"
    assert device["online"] is True and device["last_seen"].endswith("Z")
    assert device["last_payload"]["cpu"] == 12.5 and device["last_payload"]["last_error"] == ""

    queued = await api.post("/devices/demo-001/commands", json={"command": "restart", "args": {"now": True}})
    assert queued.status_code == 200
    body = queued.json()
    assert body["ok"] is True and isinstance(body["id"], int) and body["created_at"]

    nxt = (await api.get("/devices/demo-001/commands/next")).json()
    assert nxt == {
        "id": body["id"],
        "command": "restart",
        "args": {"now": True},
        "created_at": body["created_at"],
    }

    ack = await api.post(
        f"/devices/demo-001/commands/{body['id']}/ack", json={"success": True, "message": "executed (mock)"}
    )
    assert ack.status_code == 200 and ack.json()["ok"] is True and ack.json()["ack_at"]

    after = await api.get("/devices/demo-001/commands/next")
    assert after.status_code == 200 and after.json() is None


async def test_wrong_or_missing_token_is_401_everywhere(hub: RunningHub) -> None:
    """Every endpoint but /health answers 401 without the right token, including GET /devices."""
    calls = [
        ("POST", "/ingest"),
        ("GET", "/devices"),
        ("GET", "/devices/d1"),
        ("POST", "/devices/d1/commands"),
        ("GET", "/devices/d1/commands/next"),
        ("POST", "/devices/d1/commands/1/ack"),
        ("GET", "/devices/d1/metrics"),
        ("DELETE", "/devices/d1/commands/1"),
    ]
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        for headers in ({}, {"X-Auth-Token": "wrong"}, {"Authorization": "Bearer wrong"}):
            for method, path in calls:
                response = await client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert "token" in response.json()["detail"]


async def test_bearer_token_is_accepted(hub: RunningHub) -> None:
    """``Authorization: Bearer`` works as well as ``X-Auth-Token``."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        response = await client.get("/devices", headers={"Authorization": f"Bearer {hub.token}"})
    assert response.status_code == 200


async def test_ack_of_unknown_command_is_404(api: httpx.AsyncClient) -> None:
    """Acknowledging a command that does not exist for that device answers 404 with a detail."""
    response = await api.post("/devices/demo-001/commands/999/ack", json={"success": True, "message": ""})
    assert response.status_code == 404 and "999" in response.json()["detail"]
    queued = (await api.post("/devices/other/commands", json={"command": "ping"})).json()
    wrong_device = await api.post(
        f"/devices/demo-001/commands/{queued['id']}/ack", json={"success": True, "message": ""}
    )
    assert wrong_device.status_code == 404


async def test_malformed_ingest_is_422_and_extra_fields_kept(api: httpx.AsyncClient) -> None:
    """A bad body gets 422 naming the field; unknown fields of a good one are stored."""
    bad = await api.post("/ingest", json={"device_id": "d1", "cpu": "lots"})
    assert bad.status_code == 422 and "cpu" in bad.json()["detail"]
    not_json = await api.post("/ingest", content=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    far_future = await api.post("/ingest", json={"device_id": "d1", "ts": 1e18})
    assert far_future.status_code == 422 and "ts" in far_future.json()["detail"]
    infinite = await api.post("/ingest", content=b'{"device_id": "d1", "load_1": 1e400}')
    assert infinite.status_code == 422
    good = await api.post("/ingest", json={**SEED_PAYLOAD, "device_id": "d1", "fan_rpm": 1200})
    assert good.status_code == 200
    device = (await api.get("/devices/d1")).json()
    assert device["last_payload"]["fan_rpm"] == 1200
    assert device["latest_sample"]["fan_rpm"] == 1200


async def test_commands_are_fifo_and_acked_never_return(api: httpx.AsyncClient) -> None:
    """next returns the oldest unacknowledged command; once acked it is never returned again."""
    ids = [(await api.post("/devices/d2/commands", json={"command": f"c{i}"})).json()["id"] for i in range(3)]
    for expected in ids:
        nxt = (await api.get("/devices/d2/commands/next")).json()
        assert nxt["id"] == expected
        again = (await api.get("/devices/d2/commands/next")).json()
        assert again["id"] == expected  # not acked yet: still owed
        await api.post(f"/devices/d2/commands/{expected}/ack", json={"success": True, "message": "ok"})
    assert (await api.get("/devices/d2/commands/next")).json() is None


async def test_second_ack_keeps_first_result(api: httpx.AsyncClient) -> None:
    """A second ack answers 200 but the stored result stays the first one."""
    cid = (await api.post("/devices/d3/commands", json={"command": "echo", "args": {"x": 1}})).json()["id"]
    first = await api.post(f"/devices/d3/commands/{cid}/ack", json={"success": True, "message": "first"})
    second = await api.post(f"/devices/d3/commands/{cid}/ack", json={"success": False, "message": "second"})
    assert first.status_code == second.status_code == 200
    stored = (await api.get(f"/devices/d3/commands/{cid}")).json()
    assert stored["status"] == "acked" and stored["success"] is True and stored["message"] == "first"


async def test_cancel_and_conflict(api: httpx.AsyncClient) -> None:
    """DELETE cancels an open command (it is no longer returned); an acked one answers 409."""
    open_id = (await api.post("/devices/d4/commands", json={"command": "ping"})).json()["id"]
    cancelled = await api.delete(f"/devices/d4/commands/{open_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await api.get("/devices/d4/commands/next")).json() is None

    done_id = (await api.post("/devices/d4/commands", json={"command": "ping"})).json()["id"]
    await api.post(f"/devices/d4/commands/{done_id}/ack", json={"success": True, "message": "pong"})
    conflict = await api.delete(f"/devices/d4/commands/{done_id}")
    assert conflict.status_code == 409 and "acked" in conflict.json()["detail"]
    assert (await api.delete("/devices/d4/commands/12345")).status_code == 404


async def test_idempotency_key_returns_same_command(api: httpx.AsyncClient) -> None:
    """A repeated Idempotency-Key returns the first command instead of queueing a duplicate."""
    headers = {"Idempotency-Key": "op-42"}
    first = (await api.post("/devices/d5/commands", json={"command": "ping"}, headers=headers)).json()
    again = (await api.post("/devices/d5/commands", json={"command": "ping"}, headers=headers)).json()
    assert first["id"] == again["id"] and again["duplicate"] is True
    listed = (await api.get("/devices/d5/commands")).json()["commands"]
    assert [c["id"] for c in listed] == [first["id"]]


async def test_metrics_history_and_detail(api: httpx.AsyncClient) -> None:
    """Ingested samples come back from /metrics in time order, filtered by since/until/limit."""
    for i in range(5):
        sample = {**SEED_PAYLOAD, "device_id": "d6", "cpu": float(i), "ts": 1_700_000_000 + i}
        await api.post("/ingest", json=sample)
    samples = (await api.get("/devices/d6/metrics")).json()["samples"]
    assert [s["cpu"] for s in samples] == [0.0, 1.0, 2.0, 3.0, 4.0]
    params = {"since": 1_700_000_001, "until": "2023-11-14T22:13:23Z"}
    window = (await api.get("/devices/d6/metrics", params=params)).json()
    assert [s["cpu"] for s in window["samples"]] == [1.0, 2.0, 3.0]
    latest = (await api.get("/devices/d6/metrics", params={"limit": 2})).json()["samples"]
    assert [s["cpu"] for s in latest] == [3.0, 4.0]
    buckets = (await api.get("/devices/d6/metrics", params={"step": 2})).json()
    assert buckets["step"] == 2
    assert [s["cpu"] for s in buckets["samples"]] == [0.5, 2.5, 4.0]  # averages of 0-1, 2-3, 4
    assert (await api.get("/devices/d6/metrics", params={"step": "-1"})).status_code == 422
    bad = await api.get("/devices/d6/metrics", params={"since": "yesterday"})
    assert bad.status_code == 422
    assert (await api.get("/devices/nope")).status_code == 404


async def test_oversized_body_is_413(hub_factory: HubFactory) -> None:
    """A body over the size limit is refused with 413, declared or streamed, and nothing is stored."""
    hub = await hub_factory(max_frame_bytes=4096)
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        big = {**SEED_PAYLOAD, "device_id": "huge", "pad": "x" * 10_000}
        assert (await api.post("/ingest", json=big)).status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"device_id": "huge", "pad": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        streamed = await api.post("/ingest", content=chunks())
        assert streamed.status_code == 413 and "4096" in streamed.json()["detail"]
        assert (await api.get("/devices/huge")).status_code == 404
