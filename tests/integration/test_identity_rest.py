"""Identity over REST and sockets (DESIGN §10): device credentials, enrollment, roles, sessions, audit."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from monitor_server.logs import redact
from tests.agents import connect_agent, next_frame, open_socket
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.timing import t

SAMPLE = {"cpu": 1.0, "ram": 2.0, "disk": 3.0, "uptime_sec": 4, "status": "ok"}


async def enroll(api: httpx.AsyncClient, *device_ids: str) -> dict[str, str]:
    """Enroll devices with one admin-made token; their credentials by device id."""
    made = await api.post("/enrollment-tokens", json={"expires_in": 60, "max_uses": len(device_ids)})
    assert made.status_code == 201, made.text
    credentials = {}
    for device in device_ids:
        answer = await api.post("/enroll", json={"token": made.json()["token"], "device_id": device})
        assert answer.status_code == 201, answer.text
        credentials[device] = answer.json()["credential"]
    return credentials


def as_(hub: RunningHub, secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.http_url, headers={"Authorization": f"Bearer {secret}"})


async def add_user(api: httpx.AsyncClient, name: str, role: str) -> None:
    made = await api.post("/users", json={"name": name, "password": f"{name}-password", "role": role})
    assert made.status_code == 201, made.text


async def logged_in(hub: RunningHub, name: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=hub.http_url)
    answer = await client.post("/login", json={"name": name, "password": f"{name}-password"})
    assert answer.status_code == 200, answer.text
    return client


@pytest.fixture
async def fleet(hub: RunningHub, api: httpx.AsyncClient) -> dict[str, str]:
    """Devices dev-a and dev-b enrolled: their credentials."""
    return await enroll(api, "dev-a", "dev-b")


async def test_impostor_with_device_a_credential_is_refused_everywhere(
    hub: RunningHub, api: httpx.AsyncClient, fleet: dict[str, str]
) -> None:
    """Device A's credential cannot claim, feed, poll, ack, list or command B: 403; B is undisturbed."""
    b_socket = await connect_agent(hub, "dev-b", token=fleet["dev-b"])
    queued = (await api.post("/devices/dev-b/commands", json={"command": "rotate-db-password"})).json()
    assert (await next_frame(b_socket, "command"))["id"] == queued["id"]

    impostor = await open_socket(hub, token=fleet["dev-a"])
    await impostor.send(json.dumps({"type": "hello", "protocol": 1, "device_id": "dev-b"}))
    refusal = await next_frame(impostor)
    await impostor.wait_closed()
    assert refusal["code"] == "forbidden" and impostor.close_code == 4003

    async with as_(hub, fleet["dev-a"]) as a:
        calls = [
            await a.post("/ingest", json={"device_id": "dev-b", **SAMPLE}),
            await a.get("/devices/dev-b/commands/next"),
            await a.post(f"/devices/dev-b/commands/{queued['id']}/ack", json={"success": True}),
            await a.get("/devices"),
            await a.get("/devices/dev-a"),
            await a.post("/devices/dev-a/commands", json={"command": "x"}),
            await a.post("/devices/dev-b/commands", json={"command": "x"}),
            await a.get("/users"),
        ]
        assert [c.status_code for c in calls] == [403] * len(calls)
        assert all(c.json()["detail"] for c in calls)
        assert (await a.post("/ingest", json={"device_id": "dev-a", **SAMPLE})).status_code == 200
        assert (await a.get("/devices/dev-a/commands/next")).status_code == 200

    await b_socket.ping()  # still open: the impostor did not replace it
    assert b_socket.close_code is None
    b = (await api.get("/devices/dev-b")).json()
    assert b["connected"] is True and b["last_payload"] is None  # no forged sample
    command = (await api.get(f"/devices/dev-b/commands/{queued['id']}")).json()
    assert command["status"] == "delivered" and command["acked_at"] is None
    await b_socket.close()


async def test_enrollment_expiry_uses_conflict_and_reset(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A used-up token is 401, an enrolled id 409 (also once revoked) until an admin resets it."""
    token = (await api.post("/enrollment-tokens", json={"expires_in": 60, "max_uses": 1})).json()
    assert token["token"].startswith("met_") and token["max_uses"] == 1
    first = await api.post("/enroll", json={"token": token["token"], "device_id": "d1"})
    again = await api.post("/enroll", json={"token": token["token"], "device_id": "d2"})
    assert (first.status_code, again.status_code) == (201, 401)
    more = (await api.post("/enrollment-tokens", json={"expires_in": 60, "max_uses": 5})).json()["token"]
    taken = await api.post("/enroll", json={"token": more, "device_id": "d1"})
    assert taken.status_code == 409 and "reset" in taken.json()["detail"]
    revoked = await api.post("/devices/d1/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    async with as_(hub, first.json()["credential"]) as d1:
        assert (await d1.post("/ingest", json={"device_id": "d1", **SAMPLE})).status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(hub, token=first.json()["credential"])
    assert refused.value.response.status_code == 401
    assert (await api.post("/enroll", json={"token": more, "device_id": "d1"})).status_code == 409
    assert (await api.post("/devices/d1/reset")).status_code == 200
    assert (await api.post("/enroll", json={"token": more, "device_id": "d1"})).status_code == 201
    listed = (await api.get("/enrollment-tokens")).json()["enrollment_tokens"]
    assert sorted(t["uses"] for t in listed) == [1, 1] and all("token" not in t for t in listed)
    assert (await api.delete(f"/enrollment-tokens/{token['id']}")).status_code == 200
    assert (await api.delete(f"/enrollment-tokens/{token['id']}")).status_code == 404


async def test_expired_enrollment_token_is_401(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """An enrollment token past its expiry enrolls nobody."""
    _, token = await hub.hub.identity.enrollment.create_token("tests", expires_in=-1.0)  # expired already
    answer = await api.post("/enroll", json={"token": token, "device_id": "late"})
    assert answer.status_code == 401 and answer.json()["detail"]


async def test_roles_viewer_operator_admin(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A viewer reads but cannot enqueue (403); an operator enqueues but cannot manage users; admin can."""
    for name, role in (("vic", "viewer"), ("opal", "operator"), ("ada", "admin")):
        await add_user(api, name, role)
    viewer, operator, admin = [await logged_in(hub, n) for n in ("vic", "opal", "ada")]
    ui = {"X-Monitor-UI": "1", "Origin": hub.http_url}
    try:
        assert (await viewer.get("/devices")).status_code == 200
        denied = await viewer.post("/devices/d/commands", json={"command": "x"}, headers=ui)
        assert denied.status_code == 403 and "operator" in denied.json()["detail"]
        queued = await operator.post("/devices/d/commands", json={"command": "x"}, headers=ui)
        assert queued.status_code == 200
        cancel = await operator.delete(f"/devices/d/commands/{queued.json()['id']}", headers=ui)
        assert cancel.status_code == 200
        assert (await operator.get("/users")).status_code == 403
        made = await admin.post(
            "/users", json={"name": "zed", "password": "zed-password", "role": "viewer"}, headers=ui
        )
        assert made.status_code == 201 and "password" not in made.text
        assert (await admin.patch("/users/zed", json={"role": "operator"}, headers=ui)).json()[
            "role"
        ] == "operator"
        assert (await admin.delete("/users/zed", headers=ui)).status_code == 200
        assert (await admin.get("/me")).json()["role"] == "admin"
    finally:
        for client in (viewer, operator, admin):
            await client.aclose()


async def test_api_key_role_is_capped(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A key's role is at most its owner's; a viewer key cannot enqueue; a deleted key is 401."""
    await add_user(api, "opal", "operator")
    too_high = await api.post("/api-keys", json={"name": "ci", "role": "admin", "owner": "opal"})
    assert too_high.status_code == 403
    made = await api.post(
        "/api-keys", json={"name": "ci", "role": "viewer", "owner": "opal", "expires_in": 600}
    )
    assert made.status_code == 201 and made.json()["key"].startswith("mak_")
    listed = (await api.get("/api-keys")).json()["api_keys"]
    assert [k["id"] for k in listed] == [made.json()["id"]] and "key" not in listed[0]
    async with as_(hub, made.json()["key"]) as script:
        assert (await script.get("/devices")).status_code == 200
        assert (await script.post("/devices/d/commands", json={"command": "x"})).status_code == 403
        assert (await api.delete(f"/api-keys/{made.json()['id']}")).status_code == 200
        assert (await script.get("/devices")).status_code == 401


async def test_sessions_and_logout_survive_a_restart(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A session cookie works after a hub restart; one logged out before the restart stays dead."""
    await add_user(api, "ada", "admin")
    kept, ended = await logged_in(hub, "ada"), await logged_in(hub, "ada")
    saved = ended.cookies["monitor_session"]
    assert (await ended.post("/logout")).status_code == 200
    await hub.restart()
    try:
        assert (await kept.get("/devices")).status_code == 200
        async with httpx.AsyncClient(base_url=hub.http_url, cookies={"monitor_session": saved}) as thief:
            assert (await thief.get("/devices")).status_code == 401
    finally:
        await kept.aclose()
        await ended.aclose()


async def test_password_change_and_removal_end_sessions(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Changing a user's password or deleting the user ends their sessions at once."""
    await add_user(api, "vic", "viewer")
    viewer = await logged_in(hub, "vic")
    try:
        assert (await viewer.get("/devices")).status_code == 200
        await api.patch("/users/vic", json={"password": "a-new-password"})
        assert (await viewer.get("/devices")).status_code == 401
        async with httpx.AsyncClient(base_url=hub.http_url) as again:
            answer = await again.post("/login", json={"name": "vic", "password": "a-new-password"})
            assert answer.status_code == 200
            await api.delete("/users/vic")
            assert (await again.get("/devices")).status_code == 401
    finally:
        await viewer.aclose()


async def test_audit_records_who_what_target_address(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Logins (and failures), enqueues, cancels and user changes are audited with actor and address."""
    await add_user(api, "opal", "operator")
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        assert (
            await client.post("/login", json={"name": "opal", "password": "nope-nope"})
        ).status_code == 401
    operator = await logged_in(hub, "opal")
    ui = {"X-Monitor-UI": "1", "Origin": hub.http_url}
    queued = (await operator.post("/devices/d9/commands", json={"command": "reboot"}, headers=ui)).json()
    await operator.aclose()
    await api.delete(f"/devices/d9/commands/{queued['id']}")
    events = (await api.get("/audit", params={"limit": 10})).json()["events"]
    seen = [(e["action"], e["actor_kind"], e["actor"], e["target"]) for e in reversed(events)]
    assert seen == [
        ("user_created", "legacy", "legacy-token", "opal"),
        ("login_failed", "anonymous", "opal", "opal"),
        ("login", "user", "opal", "opal"),
        ("command_enqueued", "user", "opal", "d9"),
        ("command_cancelled", "legacy", "legacy-token", "d9"),
    ]
    assert all(e["address"] == "127.0.0.1" for e in events)
    assert events[1]["detail"] == {"command_id": queued["id"], "command": "reboot"}
    async with httpx.AsyncClient(base_url=hub.http_url) as anonymous:
        assert (await anonymous.get("/audit")).status_code == 401


async def test_login_is_throttled_per_name_briefly(hub_factory: HubFactory) -> None:
    """Wrong passwords for one name from many addresses lock that name out for a short while (429)."""
    hub = await hub_factory(login_name_max_failures=3, login_name_lockout=30)
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        await add_user(api, "ada", "admin")
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        for _ in range(3):
            assert (
                await client.post("/login", json={"name": "ada", "password": "wrong-one"})
            ).status_code == 401
        locked = await client.post("/login", json={"name": "ada", "password": "ada-password"})
        other = await client.post("/login", json={"name": "bob", "password": "wrong-one"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) <= 30
    assert other.status_code == 401


async def test_legacy_token_off_refuses_it(hub_factory: HubFactory) -> None:
    """With MONITOR_LEGACY_TOKEN=off the fleet token is 401 on REST, on /ws/agent and on the login form."""
    hub = await hub_factory(legacy_token="off")
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        assert (await api.get("/devices")).status_code == 401
        assert (await api.post("/ingest", json={"device_id": "x", **SAMPLE})).status_code == 401
        form = await api.post("/ui/login", data={"token": hub.token})
        assert form.status_code == 401 and "set-cookie" not in form.headers
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(hub)
    assert refused.value.response.status_code == 401


async def test_secrets_are_shown_once_and_never_logged(
    hub: RunningHub, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Issued secrets appear only in the answer that issues them: not in listings, audit or logs."""
    caplog.set_level("DEBUG")
    await add_user(api, "ada", "admin")
    secrets: list[Any] = list((await enroll(api, "d1")).values())
    secrets.append(
        (await api.post("/api-keys", json={"name": "k", "role": "viewer", "owner": "ada"})).json()["key"]
    )
    secrets.append("ada-password")
    admin = await logged_in(hub, "ada")
    secrets.append(admin.cookies["monitor_session"])
    await admin.aclose()
    answers = [
        await api.get(p)
        for p in ("/users", "/api-keys", "/enrollment-tokens", "/audit", "/devices/d1/credential")
    ]
    # Hub-side log lines as the hub's handler writes them (its filter applied); the test's own
    # HTTP client logs the cookies it receives, which is not the hub's doing.
    hub_lines = [
        redact(r.getMessage()) for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    ]
    text = "\n".join(a.text for a in answers) + "\n".join(hub_lines)
    assert all(a.status_code == 200 for a in answers)
    assert not [s for s in secrets if s in text]


async def test_removing_a_user_closes_their_dashboard_socket(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Deleting a user closes their open /ws/ui with 4401 at once (measured: well under a second)."""
    await add_user(api, "vic", "viewer")
    viewer = await logged_in(hub, "vic")
    cookie = f"monitor_session={viewer.cookies['monitor_session']}"
    await viewer.aclose()
    headers = {"Cookie": cookie, "Origin": hub.http_url}
    async with connect(f"ws://127.0.0.1:{hub.port}/ws/ui", additional_headers=headers) as feed:
        assert json.loads(await feed.recv())["type"] == "snapshot"
        started = time.monotonic()
        assert (await api.delete("/users/vic")).status_code == 200
        async with asyncio.timeout(t(1)):
            await feed.wait_closed()
        elapsed = time.monotonic() - started
    assert feed.close_code == 4401 and elapsed < t(1)


async def test_revocation_closes_the_live_socket(
    hub: RunningHub, api: httpx.AsyncClient, fleet: dict[str, str]
) -> None:
    """Revoking a connected device closes its socket with 4001 at once; other devices stay connected."""
    a = await connect_agent(hub, "dev-a", token=fleet["dev-a"])
    b = await connect_agent(hub, "dev-b", token=fleet["dev-b"])
    started = time.monotonic()
    assert (await api.post("/devices/dev-a/revoke")).status_code == 200
    async with asyncio.timeout(t(1)):
        await a.wait_closed()
    elapsed = time.monotonic() - started
    assert a.close_code == 4001 and elapsed < t(1)
    await b.ping()
    assert b.close_code is None
    with pytest.raises(InvalidStatus):
        await open_socket(hub, token=fleet["dev-a"])
    await b.close()
