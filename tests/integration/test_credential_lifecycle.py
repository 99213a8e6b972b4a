"""Revocation and rotation of a device credential with a real hub and real agents (DESIGN §10).

Revocation closes the live socket with 4001 within a second and the credential is refused on
every way in. Rotation hands the connected agent a new credential over its socket; whatever
stops in between (the hub restarting, the agent dying) the agent ends with a credential the hub
accepts, never locked out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from monitor_agent.connection import LinkState, WsTransport
from monitor_agent.credential import Credentials, CredentialStore
from monitor_server.agent_socket import AgentSocket
from protocol.errors import Conflict
from tests.agentd import LocalAgent, eventually, http_transport, start_local_agent, ws_transport
from tests.agents import connect_agent
from tests.hubs import RunningHub
from tests.timing import t

SAMPLE = {"cpu": 1.0, "ram": 2.0, "disk": 3.0, "uptime_sec": 4, "status": "ok"}


async def enroll(api: httpx.AsyncClient, device_id: str) -> str:
    """Enroll ``device_id`` with a fresh admin-made token; its credential."""
    made = await api.post("/enrollment-tokens", json={"expires_in": 60, "max_uses": 1})
    assert made.status_code == 201, made.text
    answer = await api.post("/enroll", json={"token": made.json()["token"], "device_id": device_id})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["credential"])


async def works(hub: RunningHub, device_id: str, secret: str) -> bool:
    """Whether ``secret`` is accepted for ``device_id``'s own REST ingest."""
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=hub.http_url, headers=headers) as client:
        answer = await client.post("/ingest", json={"device_id": device_id, **SAMPLE})
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


def live_socket(hub: RunningHub, device_id: str) -> AgentSocket | None:
    socket = hub.hub.sessions.get(device_id)
    return socket if socket is not None and socket.rotation_refusal() is None else None


async def credential_state(api: httpx.AsyncClient, device_id: str) -> dict[str, Any]:
    return dict((await api.get(f"/devices/{device_id}/credential")).json())


def agent_with_credential(
    hub: RunningHub, state: Path, device_id: str, secret: str, **overrides: Any
) -> tuple[LocalAgent, CredentialStore]:
    store = CredentialStore(state)
    store.keep(secret)
    transport = ws_transport(hub.ws_url, "unused-legacy", credentials=Credentials("", store), **overrides)
    return start_local_agent(state, transport, device_id=device_id), store


async def connected(hub: RunningHub, local: LocalAgent, device_id: str) -> bool:
    transport: WsTransport = local.transport
    return transport.state is LinkState.CONNECTED and live_socket(hub, device_id) is not None


# Revocation


async def test_revocation_closes_the_live_socket_within_a_second(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Each revoke closes the device's socket with 4001 in under a second (10 tries; bench/revoke.py: 100)."""
    took = []
    for n in range(10):
        device = f"rev-{n}"
        secret = await enroll(api, device)
        ws = await connect_agent(hub, device, token=secret)
        started = time.perf_counter()
        assert (await api.post(f"/devices/{device}/revoke")).status_code == 200
        async with asyncio.timeout(t(5)):
            await ws.wait_closed()
        took.append(time.perf_counter() - started)
        assert ws.close_code == 4001, ws.close_code
    assert max(took) < t(1.0), took


async def test_revoked_credential_is_refused_on_every_way_in(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Ingest, next, ack and the /ws/agent upgrade refuse it (401); enrolling again is 409 until a reset."""
    secret = await enroll(api, "gone")
    queued = (await api.post("/devices/gone/commands", json={"command": "ping"})).json()
    assert await works(hub, "gone", secret)
    assert (await api.post("/devices/gone/revoke")).status_code == 200
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=hub.http_url, headers=headers) as device:
        calls = [
            await device.post("/ingest", json={"device_id": "gone", **SAMPLE}),
            await device.get("/devices/gone/commands/next"),
            await device.post(f"/devices/gone/commands/{queued['id']}/ack", json={"success": True}),
        ]
    assert [c.status_code for c in calls] == [401, 401, 401]
    for header in ({"Authorization": f"Bearer {secret}"}, {"X-Auth-Token": secret}):
        with pytest.raises(InvalidStatus) as refused:
            await connect(hub.ws_url, additional_headers=header, open_timeout=t(5))
        assert refused.value.response.status_code == 401
    token = (await api.post("/enrollment-tokens", json={"expires_in": 60, "max_uses": 2})).json()["token"]
    assert (await api.post("/enroll", json={"token": token, "device_id": "gone"})).status_code == 409
    assert (await api.post("/devices/gone/reset")).status_code == 200
    again = await api.post("/enroll", json={"token": token, "device_id": "gone"})
    assert again.status_code == 201 and await works(hub, "gone", again.json()["credential"])
    assert not await works(hub, "gone", secret)


async def test_revocation_between_upgrade_and_hello_closes_with_4001(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """A socket admitted before the revocation but not yet registered is closed with 4001 at its hello."""
    secret = await enroll(api, "racer")
    ws = await connect(
        hub.ws_url, additional_headers={"Authorization": f"Bearer {secret}"}, open_timeout=t(5)
    )
    assert (await api.post("/devices/racer/revoke")).status_code == 200
    await ws.send(json.dumps({"type": "hello", "protocol": 1, "device_id": "racer"}))
    async with asyncio.timeout(t(5)):
        await ws.wait_closed()
    assert ws.close_code == 4001
    assert not (await api.get("/devices/racer")).json().get("connected")


async def test_legacy_socket_of_a_revoked_device_stays_open(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Only a socket opened with the device's credential is what a revocation closes."""
    await enroll(api, "legacy-dev")
    ws = await connect_agent(hub, "legacy-dev")  # the legacy token
    assert (await api.post("/devices/legacy-dev/revoke")).status_code == 200
    await ws.ping()
    assert ws.close_code is None
    await ws.close()


async def test_agent_logs_one_error_and_retries_slowly_after_revocation(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Close 4001, then 401s: one ERROR line naming the fix; the later refusals are DEBUG only."""
    caplog.set_level(logging.DEBUG, logger="monitor_agent")
    secret = await enroll(api, "agent-rev")
    local, _ = agent_with_credential(hub, tmp_path / "a", "agent-rev", secret, auth_retry_delay=0.1)
    try:
        await eventually(lambda: connected(hub, local, "agent-rev"), what="agent connected")
        assert (await api.post("/devices/agent-rev/revoke")).status_code == 200
        transport: WsTransport = local.transport
        attempts = transport.attempts
        await eventually(_true(lambda: transport.attempts >= attempts + 3), what="three more attempts")
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "credential" in r.message]
        assert len(errors) == 1, [r.message for r in errors]
        assert "reset the device" in errors[0].message and secret not in caplog.text
        assert transport.state is not LinkState.CONNECTED
        assert transport.settings.auth_retry_delay * 0.8 <= transport.last_delay
    finally:
        await local.stop()


# Rotation


async def test_rotation_over_the_socket(hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path) -> None:
    """200: the agent stored the new credential (0600) and the old one stopped working at once."""
    old = await enroll(api, "rot")
    local, store = agent_with_credential(hub, tmp_path / "a", "rot", old)
    try:
        await eventually(lambda: connected(hub, local, "rot"), what="agent connected")
        answer = await api.post("/devices/rot/rotate")
        assert answer.status_code == 200, answer.text
        assert answer.json()["rotated"] is True and answer.json()["rotation_pending"] is False
        new = store.newest()
        assert new is not None and new != old and store.previous() == old
        assert (store.path.stat().st_mode & 0o777) == 0o600
        assert await works(hub, "rot", new) and not await works(hub, "rot", old)
        assert old not in answer.text and new not in answer.text  # the secret only goes to the agent
        audit = (await api.get("/audit")).json()
        assert any(e["action"] == "credential_rotated" for e in audit["events"])
    finally:
        await local.stop()


async def test_rotation_needs_a_connected_credential_socket(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """409 when the device is not connected, or connected with the legacy token; 403 for a device."""
    secret = await enroll(api, "idle")
    assert (await api.post("/devices/idle/rotate")).status_code == 409
    ws = await connect_agent(hub, "idle")  # legacy token: nothing to rotate on this socket
    answer = await api.post("/devices/idle/rotate")
    assert answer.status_code == 409 and "without its device credential" in answer.json()["detail"]
    await ws.close()
    async with httpx.AsyncClient(
        base_url=hub.http_url, headers={"Authorization": f"Bearer {secret}"}
    ) as device:
        assert (await device.post("/devices/idle/rotate")).status_code == 403


def _true(probe: Any) -> Any:
    async def check() -> bool:
        return bool(probe())

    return check


async def _stall_confirmation(hub: RunningHub, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The hub gets ``credential_saved`` but never processes it (as if it stopped right then)."""
    arrived = asyncio.Event()

    async def not_processed(device_id: str, *args: Any, **kwargs: Any) -> None:
        arrived.set()
        raise Conflict("the test stops the hub before it processes credential_saved")

    monkeypatch.setattr(hub.hub.identity.enrollment, "confirm_rotation", not_processed)
    return arrived


async def _offer(hub: RunningHub, device_id: str) -> str:
    """Rotation as the route does it, without waiting: stage, then send over the socket."""
    secret = await hub.hub.identity.enrollment.begin_rotation(device_id)
    socket = live_socket(hub, device_id)
    assert socket is not None
    socket.offer_credential(secret)
    return secret


@pytest.mark.parametrize("step", ["before_frame", "saved_not_processed", "after"])
async def test_rotation_survives_a_hub_restart_at_each_step(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Hub restarted before the frame, after the agent saved, or after: reconnected, never locked out."""
    old = await enroll(api, "rh")
    local, store = agent_with_credential(hub, tmp_path / "a", "rh", old)
    try:
        await eventually(lambda: connected(hub, local, "rh"), what="agent connected")
        expected = old
        if step == "before_frame":
            await hub.hub.identity.enrollment.begin_rotation("rh")  # staged; the hub stops before sending
        elif step == "saved_not_processed":
            arrived = await _stall_confirmation(hub, monkeypatch)
            expected = await _offer(hub, "rh")
            async with asyncio.timeout(t(5)):
                await arrived.wait()
            assert store.newest() == expected  # saved before it answered
        else:
            assert (await api.post("/devices/rh/rotate")).status_code == 200
            expected = store.newest() or ""
        await hub.restart()
        async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as admin:
            await eventually(lambda: connected(hub, local, "rh"), what="agent reconnected")
            assert store.newest() == expected and await works(hub, "rh", expected)
            state = await credential_state(admin, "rh")
            if step != "before_frame":  # presenting the new one confirmed it; the old one is retired
                assert state["rotation_pending"] is False and not await works(hub, "rh", old)
            rotated = await admin.post("/devices/rh/rotate")  # and rotation still works afterwards
            assert rotated.status_code == 200, rotated.text
            assert await works(hub, "rh", store.newest() or "") and not await works(hub, "rh", expected)
    finally:
        await local.stop()


async def test_agent_falls_back_to_its_previous_credential(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A newest credential the hub never took is refused: the previous one connects and stays."""
    live = await enroll(api, "fb")
    store = CredentialStore(tmp_path / "a")
    store.keep(live)
    store.save("mdc_" + "0" * 43)  # as if a rotation was saved but its staging was replaced since
    transport = ws_transport(hub.ws_url, "unused-legacy", credentials=Credentials("", store))
    local = start_local_agent(tmp_path / "a", transport, device_id="fb")
    try:
        await eventually(lambda: connected(hub, local, "fb"), what="connected on the previous credential")
        assert (store.newest(), store.previous()) == (live, None)
    finally:
        await local.stop()


async def test_http_agent_presents_its_credential_and_survives_revocation(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--transport http sends Bearer <credential>; revoked, it logs one error and keeps retrying slowly."""
    caplog.set_level(logging.DEBUG, logger="monitor_agent")
    secret = await enroll(api, "http-dev")
    store = CredentialStore(tmp_path / "h")
    store.keep(secret)
    transport = http_transport(
        hub.http_url, "unused-legacy", credentials=Credentials("", store), auth_retry_delay=0.1
    )
    local = start_local_agent(tmp_path / "h", transport, device_id="http-dev")
    try:

        async def sampled() -> bool:
            return bool((await api.get("/devices/http-dev")).json().get("last_payload"))

        await eventually(sampled, what="samples over REST with the credential")
        assert (await api.post("/devices/http-dev/revoke")).status_code == 200
        await eventually(_true(lambda: not transport.connected.is_set()), what="refused")
        refusals = len([r for r in caplog.records if "refused the token" in r.message])
        await eventually(
            _true(
                lambda: len([r for r in caplog.records if "refused the token" in r.message]) >= refusals + 2
            ),
            what="two more refused cycles",
        )
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "credential" in r.message]
        assert len(errors) == 1 and "reset the device" in errors[0].message, [r.message for r in errors]
        assert secret not in caplog.text
    finally:
        await local.stop()


async def test_agent_with_another_devices_credential_retries_slowly(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A hello for another device than the credential's (4003) is a refused credential, not a fast loop."""
    secret = await enroll(api, "owner")
    local, _ = agent_with_credential(hub, tmp_path / "o", "not-the-owner", secret, auth_retry_delay=30)
    try:
        transport: WsTransport = local.transport
        await eventually(
            _true(lambda: transport.attempts >= 1 and transport.last_delay >= 24), what="slow retry"
        )
        assert "HTTP 403" in transport.last_failure or "credential" in transport.last_failure
        assert transport.attempts == 1
    finally:
        await local.stop()


async def test_rotation_not_confirmed_is_202_and_keeps_the_old_credential(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No confirmation processed: 202, the old credential still works beside the new one."""
    old = await enroll(api, "slow")
    local, store = agent_with_credential(hub, tmp_path / "a", "slow", old)
    try:
        await eventually(lambda: connected(hub, local, "slow"), what="agent connected")
        await _stall_confirmation(hub, monkeypatch)
        answer = await api.post("/devices/slow/rotate")
        assert answer.status_code == 202 and answer.json()["rotated"] is False, answer.text
        new = store.newest() or ""
        assert new != old and await works(hub, "slow", old) and await works(hub, "slow", new)
        assert (await credential_state(api, "slow"))["rotation_pending"] is True
    finally:
        await local.stop()
