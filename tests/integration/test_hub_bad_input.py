"""Bad input on /ws/agent and the REST API gets the documented answer and never disturbs another agent."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.agents import connect_agent, next_frame, open_socket, send
from tests.conftest import HubFactory
from tests.hubs import RunningHub


@pytest.fixture
async def small_hub(hub_factory: HubFactory) -> RunningHub:
    """A hub with a 4 KiB frame limit and a short hello timeout."""
    return await hub_factory(max_frame_bytes=4096, hello_timeout=0.5)


@pytest.fixture
async def bystander(small_hub: RunningHub) -> AsyncIterator[ClientConnection]:
    """A well-behaved agent connected throughout the abuse."""
    async with await connect_agent(small_hub, "bystander") as ws:
        yield ws


async def still_served(hub: RunningHub, ws: ClientConnection) -> None:
    """The bystander still gets its commands pushed."""
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        cid = (await api.post("/devices/bystander/commands", json={"command": "ping"})).json()["id"]
    assert (await next_frame(ws, "command"))["id"] == cid


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"no": "type"}', "unknown_type"),
        ('{"type": "metrics", "cpu": "hot"}', "invalid_frame"),
        ('{"type": "ack", "id": "x", "success": true}', "invalid_frame"),
        ('{"type": "ack", "id": 424242, "success": true}', "unknown_command"),
        ('{"type": "hello", "protocol": 1, "device_id": "abuser"}', "unexpected_frame"),
    ],
)
async def test_bad_frame_gets_error_frame_and_session_survives(
    small_hub: RunningHub, bystander: ClientConnection, raw: str, code: str
) -> None:
    """A refused frame is answered with an error frame naming the problem; the socket stays usable."""
    async with await connect_agent(small_hub, "abuser") as ws:
        await ws.send(raw)
        error = await next_frame(ws, "error")
        assert error["code"] == code and error["message"]
        assert error.get("id") == (424242 if code == "unknown_command" else None)
        await send(ws, {"type": "metrics", "cpu": 5.0})
        await send(ws, {"type": "heartbeat"})
        await still_served(small_hub, bystander)
        assert small_hub.hub.presence.is_online("abuser")


async def test_first_frame_must_be_hello(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """Metrics before hello get an error frame and a 1008 close."""
    ws = await open_socket(small_hub)
    await send(ws, {"type": "metrics", "cpu": 1.0})
    error = await next_frame(ws, "error")
    await ws.wait_closed()
    assert error["code"] == "hello_required"
    assert ws.close_code == 1008
    await still_served(small_hub, bystander)


async def test_missing_hello_times_out(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """A socket that never says hello is closed with 1008 after the hello timeout."""
    ws = await open_socket(small_hub)
    error = await next_frame(ws, "error")
    await ws.wait_closed()
    assert error["code"] == "hello_timeout"
    assert ws.close_code == 1008
    await still_served(small_hub, bystander)


async def test_wrong_protocol_version_refused(small_hub: RunningHub) -> None:
    """A hello for another protocol version is refused with a clear error."""
    ws = await open_socket(small_hub)
    await send(ws, {"type": "hello", "protocol": 99, "device_id": "future"})
    error = await next_frame(ws, "error")
    await ws.wait_closed()
    assert error["code"] == "unsupported_protocol" and "99" in error["message"]


async def test_oversized_frame_closes_1009(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """A frame over the configured limit closes that socket with 1009; others are untouched."""
    ws = await connect_agent(small_hub, "big")
    await ws.send(json.dumps({"type": "metrics", "pad": "x" * 8192}))
    with pytest.raises(ConnectionClosed):
        await next_frame(ws)
    assert ws.close_code == 1009
    await still_served(small_hub, bystander)


async def test_wrong_token_refused_on_upgrade(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """A wrong or missing token is refused with 401 during the handshake: no socket is accepted."""
    for token in ("wrong", ""):
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(small_hub, token=token)
        assert refused.value.response.status_code == 401
    await still_served(small_hub, bystander)


async def test_flood_of_bad_frames_closes_1008(small_hub: RunningHub, bystander: ClientConnection) -> None:
    """Ten invalid frames in a row close the socket with 1008 (policy violation)."""
    ws = await connect_agent(small_hub, "flooder")
    for _ in range(10):
        await ws.send("garbage")
    await ws.wait_closed()
    assert ws.close_code == 1008
    await still_served(small_hub, bystander)


# REST: bad input is a 4xx with a JSON detail, never a 500 (found by test_openapi_fuzz.py).

PAST_INT64 = "1180591620717411303423"  # 2**70 + 1: no SQLite integer holds it
BIG_INT = "1" + "0" * 30  # valid JSON, but orjson (store, answers, pushed frames) takes 64 bits


@pytest.mark.parametrize("cid", [PAST_INT64, "9" * 5000, "0" * 5000 + "1"])
@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("DELETE", ""), ("POST", "/ack")], ids=["get", "cancel", "ack"]
)
async def test_command_id_past_int64_is_404(
    api: httpx.AsyncClient, method: str, suffix: str, cid: str
) -> None:
    """A command id past SQLite's 64-bit integers (or Python's 4,300-digit int()) is a 404, not a 500."""
    path = f"/devices/d1/commands/{cid}{suffix}"
    response = await api.request(method, path, json={"success": True} if method == "POST" else None)
    assert response.status_code == 404 and response.json()["detail"]
    if cid.startswith("0"):  # leading zeros are read past: this is command 1, created here
        created = (await api.post("/devices/d1/commands", json={"command": "c"})).json()
        assert created["id"] == 1 and (await api.get(f"/devices/d1/commands/{cid}")).json()["id"] == 1


@pytest.mark.parametrize("limit", ["²", "\u0661\u0660", "9" * 5000, "-1", "0", "1.5", ""])
async def test_limit_takes_ascii_digits_only(api: httpx.AsyncClient, limit: str) -> None:
    """``limit`` is ASCII digits from 1: "²", Arabic-Indic digits and 5,000 digits are 422s, not 500s."""
    for path in ("/devices/d1/events", "/devices/d1/commands", "/devices/d1/metrics"):
        response = await api.get(path, params={"limit": limit})
        assert response.status_code == 422 and "limit" in response.json()["detail"], path


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
async def test_non_finite_time_is_422(api: httpx.AsyncClient, value: str) -> None:
    """``since``/``until`` of nan or inf are no time: 422 (they used to answer 200 and match nothing)."""
    for name in ("since", "until"):
        response = await api.get("/devices/d1/metrics", params={name: value})
        assert response.status_code == 422 and name in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/ingest", '{"device_id": "d1", "cpu": 1.0, "x": %s}'),
        ("/devices/d1/commands", '{"command": "c", "args": {"x": %s}}'),
        ("/devices/d1/commands/1/ack", '{"success": true, "x": %s}'),
    ],
)
async def test_unstorable_json_is_422(api: httpx.AsyncClient, path: str, body: str) -> None:
    """Integers past 64 bits or nesting past orjson's 255 levels (or msgspec's) are 422s, not 500s."""
    for value in (BIG_INT, "[" * 300 + "]" * 300, "[" * 100_000 + "]" * 100_000):
        response = await api.post(path, content=body % value)
        assert response.status_code == 422 and response.json()["detail"], value[:10]
    assert (await api.get("/health")).json()["ok"] is True


async def test_405_allow_names_every_method_of_the_path(api: httpx.AsyncClient) -> None:
    """A 405's ``Allow`` names every method of the path, not only those of the first route matched."""
    for path, methods in [
        ("/devices/d1/commands", {"GET", "HEAD", "POST"}),
        ("/devices/d1/commands/1", {"GET", "HEAD", "DELETE"}),
    ]:
        response = await api.put(path)
        assert response.status_code == 405 and response.json()["detail"]
        assert set(response.headers["allow"].split(", ")) == methods


async def test_internal_error_is_json_500_logged_once(
    api: httpx.AsyncClient, hub: RunningHub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug answers 500 ``{"detail": "internal error"}``, logged once with its traceback and no header."""

    async def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(hub.hub.store, "list_devices", broken)
    with caplog.at_level(logging.ERROR):
        response = await api.get(
            "/devices?secret-query=1", headers={"Cookie": "monitor_session=cookie-value"}
        )
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info and "GET /devices" in errors[0].getMessage()
    assert all(s not in caplog.text for s in (hub.token, "cookie-value", "secret-query"))
    assert (await api.get("/health")).status_code == 200


@pytest.mark.parametrize(
    "body", [b'{"device_id": "d1", "hostname": "\xff"}', b'{"device_id": "d1", "x": "\xff"}', b'{"\xff": 1}']
)
async def test_ingest_not_utf8_is_422(api: httpx.AsyncClient, body: bytes) -> None:
    """An /ingest body with a string that is not UTF-8 is a 422 (msgspec's UnicodeDecodeError was a 500)."""
    response = await api.post("/ingest", content=body)
    assert response.status_code == 422 and "UTF-8" in response.json()["detail"]
