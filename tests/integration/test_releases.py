"""Agent releases on the hub (DESIGN §12): publish, rollouts over REST, the update frame, the bundle
download and per-device progress, with a real hub and real WebSocket clients speaking protocol v1."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from monitor_agent.update import receive
from monitor_agent.update.install import this_platform
from monitor_agent.update.receive import Updates
from monitor_agent.update.state import Layout
from monitor_server.releases import in_percent
from monitor_server.releases_cli import keygen, publish
from monitor_server.store.records import AuditEvent
from monitor_server.store.sqlite import SQLiteStore
from protocol.release import manifest_for, sha256_file, write_bundle
from tests.agentd import device, eventually, start_local_agent, ws_transport
from tests.agents import next_frame, open_socket, send, ui_feed
from tests.hubs import RunningHub
from tests.timing import t


def make_bundle(folder: Path, version: str) -> Path:
    """A bundle with one stand-in wheel: enough for the hub, which never installs it."""
    wheels = folder / f"wheels-{version}"
    wheels.mkdir(parents=True)
    (wheels / f"monitor-{version}-py3-none-any.whl").write_bytes(f"not a wheel {version}".encode())
    out = folder / f"agent-{version}.zip"
    write_bundle(out, manifest_for(wheels, version, "3.11", "linux-x86_64", "2026-11-26T00:00:00Z"), wheels)
    return out


@pytest.fixture
def key(tmp_path: Path) -> Path:
    private, _ = keygen(tmp_path / "keys")
    return private


async def published(hub: RunningHub, folder: Path, key: Path, version: str) -> dict[str, str]:
    bundle = make_bundle(folder, version)
    return await asyncio.to_thread(publish, bundle, key, hub.settings.db, "test")


async def hello(
    hub: RunningHub, device_id: str, version: str = "0.1.0", updates: bool = True, token: str | None = None
) -> ClientConnection:
    ws = await open_socket(hub, token)
    caps = ["ping", "updates"] if updates else ["ping"]
    await send(
        ws,
        {
            "type": "hello",
            "protocol": 1,
            "device_id": device_id,
            "agent_version": version,
            "capabilities": caps,
        },
    )
    assert (await next_frame(ws))["type"] == "welcome"
    return ws


async def closed(api: httpx.AsyncClient, ws: ClientConnection, device_id: str) -> None:
    """Close the socket and wait until the hub has the device offline (the next hello is a new session)."""
    await ws.close()

    async def offline() -> bool:
        return not (await api.get(f"/devices/{device_id}")).json()["online"]

    await eventually(offline, 5, f"{device_id} offline")


async def no_frame(ws: ClientConnection, kind: str, within: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await next_frame(ws, kind, within)


async def audit_of(db: Path) -> list[AuditEvent]:
    store = SQLiteStore(db)
    await store.open()
    try:
        return await store.list_audit(None, 100)
    finally:
        await store.close()


def test_publish_cli_signs_stores_and_refuses_a_version_twice(tmp_path: Path, key: Path) -> None:
    """`releases publish` prints version, sha256 and signature, and is audited; a version twice fails."""
    bundle, db = make_bundle(tmp_path, "0.2.0"), tmp_path / "monitor.db"
    argv = [sys.executable, "-m", "monitor_server", "releases", "publish", str(bundle), "--key", str(key)]
    first = subprocess.run([*argv, "--db", str(db)], capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert body["version"] == "0.2.0" and body["sha256"] == sha256_file(bundle) and body["signature"]
    again = subprocess.run([*argv, "--db", str(db)], capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode != 0 and "already published" in again.stderr
    # Audited once (the refused second run is not): kind cli, the OS user, the version.
    events = [e for e in asyncio.run(audit_of(db)) if e.action == "release_published"]
    assert [(e.actor_kind, e.actor, e.target) for e in events] == [("cli", getpass.getuser(), "0.2.0")]
    assert events[0].detail == {"sha256": body["sha256"], "size": int(body["size"])}


async def test_rollout_to_devices_offers_update_to_those_connected(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """A rollout to a device list sends the update frame to those listed that run under the launcher."""
    signed = await published(hub, tmp_path, key, "0.2.0")
    target = await hello(hub, "upd-1")
    other = await hello(hub, "upd-2")
    plain = await hello(hub, "upd-3", updates=False)
    answer = await api.post("/releases/0.2.0/rollout", json={"devices": ["upd-1", "upd-3"]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["offered"] == 1 and answer.json()["target"] == {"devices": ["upd-1", "upd-3"]}
    audit = (await api.get("/audit")).json()["events"]
    assert any(e["action"] == "release_rollout" and e["target"] == "0.2.0" for e in audit), audit
    update = await next_frame(target, "update")
    assert update == {
        "type": "update",
        "version": "0.2.0",
        "sha256": signed["sha256"],
        "signature": signed["signature"],
        "url": "/releases/0.2.0/bundle",
        "jitter": 0.1,  # one agent offered at once: 0.1 s to start its download in
    }
    await no_frame(other, "update")
    await no_frame(plain, "update")
    for ws in (target, other, plain):
        await ws.close()


async def test_targeted_agent_is_offered_at_hello_unless_on_that_version_or_failed(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """An agent connecting later is offered it at hello; not one on that version or whose update failed."""
    await published(hub, tmp_path, key, "0.2.0")
    answer = await api.post("/releases/0.2.0/rollout", json={"tags": ["canary"]})
    assert answer.status_code == 201 and answer.json()["offered"] == 0
    assert (await api.patch("/devices/late", json={"tags": ["canary"]})).status_code == 404
    ws = await hello(hub, "late", updates=False)  # the device exists now; tag it
    assert (await api.patch("/devices/late", json={"tags": ["canary"]})).status_code == 200
    await closed(api, ws, "late")
    ws = await hello(hub, "late")
    assert (await next_frame(ws, "update"))["version"] == "0.2.0"
    await send(
        ws, {"type": "update_status", "version": "0.2.0", "state": "failed", "reason": "bad_signature: x"}
    )

    async def failed() -> bool:
        return (await device_state(api, "0.2.0", "late")).get("state") == "failed"

    await eventually(failed, 5, "failure stored")
    await closed(api, ws, "late")
    ws = await hello(hub, "late")
    await no_frame(ws, "update")  # it failed: not offered again until a new rollout
    await closed(api, ws, "late")
    ws = await hello(hub, "late", version="0.2.0")
    await no_frame(ws, "update")
    await ws.close()


async def test_bundle_download_needs_a_credential(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """A device credential downloads the bundle byte for byte; no credential is 401, unknown version 404."""
    signed = await published(hub, tmp_path, key, "0.2.0")
    token = (await api.post("/enrollment-tokens", json={"expires_in": 60, "max_uses": 1})).json()["token"]
    credential = (await api.post("/enroll", json={"token": token, "device_id": "dl-1"})).json()["credential"]
    async with httpx.AsyncClient(base_url=hub.http_url) as anonymous:
        refused = await anonymous.get("/releases/0.2.0/bundle")
        assert refused.status_code == 401 and "detail" in refused.json()
        got = await anonymous.get("/releases/0.2.0/bundle", headers={"Authorization": f"Bearer {credential}"})
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    assert got.content == (tmp_path / "agent-0.2.0.zip").read_bytes()
    assert got.headers["x-release-sha256"] == signed["sha256"]
    assert (await api.get("/releases/9.9.9/bundle")).status_code == 404


async def test_progress_and_counts_follow_update_status(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """GET /releases/{v} shows each device's state as its agent reports it, with counts per state."""
    await published(hub, tmp_path, key, "0.2.0")
    one, two = await hello(hub, "p-1"), await hello(hub, "p-2")
    await api.post("/releases/0.2.0/rollout", json={"devices": ["p-1", "p-2"]})
    await next_frame(one, "update")
    await next_frame(two, "update")
    await send(one, {"type": "update_status", "version": "0.2.0", "state": "downloading"})

    async def states() -> dict[str, str]:
        detail = (await api.get("/releases/0.2.0")).json()
        return {d["device_id"]: d["state"] for d in detail["devices"]}

    async def reached(wanted: dict[str, str]) -> bool:
        return await states() == wanted

    await eventually(lambda: reached({"p-1": "downloading", "p-2": "offered"}), 5, "downloading")
    await send(one, {"type": "update_status", "version": "0.2.0", "state": "installed"})
    await eventually(lambda: reached({"p-1": "installed", "p-2": "offered"}), 5, "installed")
    detail = (await api.get("/releases/0.2.0")).json()
    assert detail["counts"] == {"offered": 1, "downloading": 0, "installed": 1, "failed": 0, "rolled_back": 0}
    assert detail["rollout"]["target"] == {"devices": ["p-1", "p-2"]} and not detail["rollout"]["paused"]
    listed = (await api.get("/releases")).json()["releases"]
    assert [r["version"] for r in listed] == ["0.2.0"] and listed[0]["rollout"]["version"] == "0.2.0"
    await one.close()
    await two.close()


async def test_failures_pause_the_rollout(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """A rolled back update among the first devices pauses the rollout: no more offers."""
    await published(hub, tmp_path, key, "0.2.0")
    ws = await hello(hub, "f-1")
    await api.post("/releases/0.2.0/rollout", json={"percent": 100})
    await next_frame(ws, "update")
    await send(ws, {"type": "update_status", "version": "0.2.0", "state": "rolled_back", "reason": "exited"})

    async def paused() -> bool:
        return bool((await api.get("/releases/0.2.0")).json()["rollout"]["paused"])

    await eventually(paused, 5, "rollout paused")
    other = await hello(hub, "f-2")
    await no_frame(other, "update")
    await ws.close()
    await other.close()


async def test_bad_rollouts_are_4xx(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """Two targets, none, a percent past 100 or an unknown version: a 4xx with a JSON detail."""
    await published(hub, tmp_path, key, "0.2.0")
    bodies: list[dict[str, object]] = [
        {"percent": 10, "devices": ["a"]},
        {},
        {"percent": 101},
        {"devices": []},
        {"tags": ["bad tag"]},
    ]
    for body in bodies:
        answer = await api.post("/releases/0.2.0/rollout", json=body)
        assert answer.status_code == 422 and answer.json()["detail"], body
    unknown = await api.post("/releases/0.9.0/rollout", json={"percent": 10})
    assert unknown.status_code == 404 and "0.9.0" in unknown.json()["detail"]
    assert (await api.get("/releases/0.9.0")).status_code == 404


def test_percent_is_stable_and_grows() -> None:
    """A device in at 10% stays in at 50%; about the given share of devices are in."""
    devices = [f"d{i}" for i in range(2000)]
    ten = {d for d in devices if in_percent(d, 10)}
    fifty = {d for d in devices if in_percent(d, 50)}
    assert ten <= fifty and 120 < len(ten) < 280 and 850 < len(fifty) < 1150
    assert not any(in_percent(d, 0) for d in devices) and all(in_percent(d, 100) for d in devices)


# A real agent (in this event loop) under a launcher's state folder: what it does with the offer.


async def enrolled(api: httpx.AsyncClient, device_id: str) -> str:
    token = (await api.post("/enrollment-tokens", json={"expires_in": 60, "max_uses": 1})).json()["token"]
    answer = await api.post("/enroll", json={"token": token, "device_id": device_id})
    return str(answer.json()["credential"])


def platform_bundle(folder: Path, version: str) -> Path:
    """A bundle for this interpreter and platform (staging checks them), with a stand-in wheel."""
    python, platform = this_platform()
    wheels = folder / f"pwheels-{version}"
    wheels.mkdir(parents=True)
    (wheels / f"monitor-{version}-py3-none-any.whl").write_bytes(f"not a wheel {version}".encode())
    out = folder / f"platform-{version}.zip"
    write_bundle(out, manifest_for(wheels, version, python, platform, "2026-11-26T00:00:00Z"), wheels)
    return out


async def device_state(api: httpx.AsyncClient, version: str, device_id: str) -> dict[str, str]:
    for entry in (await api.get(f"/releases/{version}")).json()["devices"]:
        if entry["device_id"] == device_id:
            return dict(entry)
    return {}


async def test_agent_refuses_a_downgrade_unless_the_rollout_allows_it(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """A lower version is refused (failed, downgrade) before any download; with allow_downgrade the
    agent downloads it with its credential, verifies it and stages it for the launcher."""
    bundle = platform_bundle(tmp_path, "0.0.5")
    await asyncio.to_thread(publish, bundle, key, hub.settings.db, "test")
    credential = await enrolled(api, "ota-1")
    state = tmp_path / "state"
    updates = Updates(state, (tmp_path / "keys" / "release.pub").read_bytes(), "0.1.0")
    local = start_local_agent(state, ws_transport(hub.ws_url, credential, updates=updates), device_id="ota-1")
    try:
        await eventually(lambda: device(api, "ota-1"), 10, "agent connected")
        assert (await api.post("/releases/0.0.5/rollout", json={"devices": ["ota-1"]})).json()["offered"] == 1

        async def failed() -> dict[str, str]:
            found = await device_state(api, "0.0.5", "ota-1")
            return found if found.get("state") == "failed" else {}

        refused = await eventually(failed, 10, "downgrade refused")
        assert refused["reason"].startswith("update_failed: downgrade: "), refused
        assert Layout(state).read_staged() is None
        again = await api.post(
            "/releases/0.0.5/rollout", json={"devices": ["ota-1"], "allow_downgrade": True}
        )
        assert again.json()["offered"] == 1

        async def staged() -> object:
            return Layout(state).read_staged()

        found = await eventually(staged, 10, "staged for the launcher")
        assert found.version == "0.0.5" and found.allow_downgrade  # type: ignore[attr-defined]
        assert (await device_state(api, "0.0.5", "ota-1"))["state"] == "downloading"
    finally:
        await local.stop()


async def test_agent_refuses_a_bundle_signed_with_another_key(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """A release signed with a key the agent does not trust is reported failed (bad_signature), not staged."""
    await asyncio.to_thread(publish, platform_bundle(tmp_path, "0.2.0"), key, hub.settings.db, "test")
    _, other_pub = keygen(tmp_path / "other-keys")
    credential = await enrolled(api, "ota-2")
    state = tmp_path / "state"
    updates = Updates(state, other_pub.read_bytes(), "0.1.0")
    local = start_local_agent(state, ws_transport(hub.ws_url, credential, updates=updates), device_id="ota-2")
    try:
        await eventually(lambda: device(api, "ota-2"), 10, "agent connected")
        await api.post("/releases/0.2.0/rollout", json={"percent": 100})

        async def failed() -> dict[str, str]:
            found = await device_state(api, "0.2.0", "ota-2")
            return found if found.get("state") == "failed" else {}

        assert (await eventually(failed, 10, "refused"))["reason"].startswith(
            "update_failed: bad_signature: "
        )
        assert Layout(state).read_staged() is None
    finally:
        await local.stop()


async def test_agent_reports_the_launchers_result_once(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a restart the launcher's result.json is reported to the hub once: a rollback as
    rolled_back with the reason ``update_failed: <code>: ...``, which the hub logs as update_failed."""
    caplog.set_level(logging.WARNING, logger="monitor_server.releases")
    await asyncio.to_thread(publish, platform_bundle(tmp_path, "0.2.0"), key, hub.settings.db, "test")
    state = tmp_path / "state"
    Layout(state).write_result(
        "update_failed",
        "0.2.0",
        code="exited",
        reason="the new version exited with status 1 before reaching welcome",
    )
    updates = Updates(state, (tmp_path / "keys" / "release.pub").read_bytes(), "0.1.0")
    local = start_local_agent(state, ws_transport(hub.ws_url, hub.token, updates=updates), device_id="ota-3")
    try:

        async def reported() -> dict[str, str]:
            return await device_state(api, "0.2.0", "ota-3")

        found = await eventually(reported, 10, "result reported")
        assert found["state"] == "rolled_back", found
        reason = "the new version exited with status 1 before reaching welcome"
        assert found["reason"] == f"update_failed: exited: {reason}", found
        logged = [r.getMessage() for r in caplog.records if r.name == "monitor_server.releases"]
        assert f"agent ota-3: update_failed: update to 0.2.0 rolled_back: exited: {reason}" in logged, logged
    finally:
        await local.stop()
    assert receive.unreported_result(updates) is None


async def test_agent_refuses_a_truncated_download(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """A bundle cut short on its way (here: in the hub's database) fails the hash check: failed,
    hash_mismatch, nothing staged, and the agent stays connected on its version."""
    bundle = platform_bundle(tmp_path, "0.2.0")
    await asyncio.to_thread(publish, bundle, key, hub.settings.db, "test")
    with sqlite3.connect(hub.settings.db) as db:
        db.execute("UPDATE releases SET bundle = ? WHERE version = '0.2.0'", (bundle.read_bytes()[:-100],))
    state = tmp_path / "state"
    updates = Updates(state, (tmp_path / "keys" / "release.pub").read_bytes(), "0.1.0")
    local = start_local_agent(state, ws_transport(hub.ws_url, hub.token, updates=updates), device_id="ota-4")
    try:
        await eventually(lambda: device(api, "ota-4"), 10, "agent connected")
        await api.post("/releases/0.2.0/rollout", json={"devices": ["ota-4"]})

        async def failed() -> dict[str, str]:
            found = await device_state(api, "0.2.0", "ota-4")
            return found if found.get("state") == "failed" else {}

        assert (await eventually(failed, 10, "refused"))["reason"].startswith(
            "update_failed: hash_mismatch: "
        )
        assert Layout(state).read_staged() is None
        assert not list(Layout(state).update.glob(".download-*"))
        assert (await device(api, "ota-4") or {}).get("online")
    finally:
        await local.stop()


async def test_progress_and_rollouts_are_told_to_dashboards(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, key: Path
) -> None:
    """``/ws/ui`` gets a ``rollout`` event when one is saved and a ``release`` event per stored state:
    offered at the rollout, then each ``update_status`` the agent sends."""
    await published(hub, tmp_path, key, "0.2.0")
    ws = await hello(hub, "feed-1")
    async with ui_feed(hub) as (feed, _snapshot):

        async def next_event(kind: str) -> dict[str, object]:
            async with asyncio.timeout(t(5)):
                while True:
                    frame = json.loads(await feed.recv())
                    for event in frame.get("events", []):
                        if event.get("type") == kind:
                            return dict(event)

        assert (await api.post("/releases/0.2.0/rollout", json={"devices": ["feed-1"]})).status_code == 201
        rollout = await next_event("rollout")
        assert (rollout["version"], rollout["target"], rollout["paused"]) == (
            "0.2.0",
            {"devices": ["feed-1"]},
            False,
        )
        offered = await next_event("release")
        assert (offered["version"], offered["device_id"], offered["state"]) == ("0.2.0", "feed-1", "offered")
        await next_frame(ws, "update")
        for state in ("downloading", "installed"):
            await send(ws, {"type": "update_status", "version": "0.2.0", "state": state, "reason": ""})
            event = await next_event("release")
            assert (event["device_id"], event["state"], event["reason"]) == ("feed-1", state, "")
            assert str(event["updated_at"]).endswith("Z")
    await ws.close()
