"""Nothing lost, nothing jammed: commands that cannot be delivered are refused, never stuck in a queue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from monitor_server.bus import Subscription
from monitor_server.events import CommandEvent
from monitor_server.store import Command, SQLiteStore
from monitor_server.store.schema import MIGRATIONS, SCHEMA_VERSION
from protocol.commands import FINAL_STATES, CommandState
from protocol.timestamps import to_epoch
from tests.agentd import enqueue, start_local_agent, ws_transport
from tests.agents import connect_agent, next_frame, send
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.timing import t

LIMIT = 4096  # the hub's max_frame_bytes in these tests (the agent's too)


@asynccontextmanager
async def client(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        yield api


async def settled(events: Subscription, command_id: int, within: float = 10) -> Command:
    """The command as published when it reaches a final state (acked, cancelled, expired)."""
    async with asyncio.timeout(t(within)):
        while True:
            event = await events.get()
            assert event is not None, "the bus subscription overflowed"
            if (
                isinstance(event, CommandEvent)
                and event.command.id == command_id
                and event.command.state in FINAL_STATES
            ):
                return event.command


def padded(size: int) -> dict[str, Any]:
    return {"command": "echo", "args": {"pad": "x" * size}}


# Item 2: one oversized command must not jam its device.


async def test_command_too_big_to_frame_is_refused_at_enqueue(hub_factory: HubFactory) -> None:
    """A body within the request limit whose command frame would exceed the frame limit is 413, not queued."""
    hub = await hub_factory(max_frame_bytes=LIMIT)
    body = padded(LIMIT - 60)
    assert len(json.dumps(body)) < LIMIT  # the request itself is within the limit
    async with client(hub) as api:
        refused = await api.post("/devices/big-1/commands", json=body)
        assert refused.status_code == 413, refused.text[:200]
        assert f"limit {LIMIT} bytes" in refused.json()["detail"]
        assert (await api.get("/devices/big-1/commands")).json()["commands"] == []
        assert (await api.get("/devices/big-1/commands/next")).json() is None
        assert (await api.post("/devices/big-1/commands", json=padded(100))).status_code == 200


async def test_largest_accepted_command_fits_the_agent_frame_limit(hub_factory: HubFactory) -> None:
    """The largest command the hub accepts arrives whole at a socket that reads at most the frame limit."""
    hub = await hub_factory(max_frame_bytes=LIMIT)
    async with client(hub) as api:
        accepted, refused = 0, LIMIT  # pad lengths: the first is accepted, the second is not
        while refused - accepted > 1:
            middle = (accepted + refused) // 2
            status = (await api.post("/devices/probe/commands", json=padded(middle))).status_code
            assert status in (200, 413), status
            accepted, refused = (middle, refused) if status == 200 else (accepted, middle)
        async with await connect_agent(hub, "big-2", max_size=LIMIT) as ws:
            largest = (await api.post("/devices/big-2/commands", json=padded(accepted))).json()["id"]
            try:
                frame = await next_frame(ws, "command")
            except ConnectionClosed as exc:
                raise AssertionError(f"the accepted command did not fit the frame limit: {exc}") from None
    assert frame["id"] == largest and len(frame["args"]["pad"]) == accepted
    assert accepted > LIMIT // 2


async def test_agent_refuses_an_oversized_command_alone_and_stays_connected(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    """A stored command with a frame over the agent's limit is acked failed; the next runs; no reconnect."""
    hub = await hub_factory(max_frame_bytes=LIMIT)
    # Stored directly, as a hub with a larger limit (or before this check) would have queued it.
    big, _ = await hub.hub.store.create_command("big-3", "echo", {"pad": "x" * 2 * LIMIT}, time.time())
    transport = ws_transport(hub.ws_url, hub.token, max_frame_bytes=LIMIT)
    async with hub.hub.bus.subscribe() as events:
        local = start_local_agent(tmp_path, transport, device_id="big-3")
        try:
            refused = await settled(events, big.id)
            async with client(hub) as api:
                after = await enqueue(api, "big-3", "ping")
            ran = await settled(events, after)
        finally:
            await local.stop()
    assert refused.state is CommandState.ACKED and refused.success is False
    assert refused.message is not None and f"limit of {LIMIT} bytes" in refused.message
    assert refused.result is not None and refused.result["error"] == "frame_too_large"
    assert ran.state is CommandState.ACKED and (ran.success, ran.message) == (True, "pong")
    assert (transport.attempts, transport.connections) == (1, 1)


async def test_agent_refuses_an_invalid_command_frame_by_its_id(hub: RunningHub, tmp_path: Path) -> None:
    """A command frame that fails validation but names its id is acked failed, not left open forever."""
    # args must be an object: a row stored with a list makes a frame the agent cannot validate.
    bad_args: Any = [1, 2]
    bad, _ = await hub.hub.store.create_command("bad-1", "echo", bad_args, time.time())
    transport = ws_transport(hub.ws_url, hub.token)
    async with hub.hub.bus.subscribe() as events:
        local = start_local_agent(tmp_path, transport, device_id="bad-1")
        try:
            refused = await settled(events, bad.id)
            async with client(hub) as api:
                after = await enqueue(api, "bad-1", "ping")
            ran = await settled(events, after)
        finally:
            await local.stop()
    assert refused.state is CommandState.ACKED and refused.success is False
    assert refused.message is not None and "invalid" in refused.message
    assert ran.success is True
    assert (transport.attempts, transport.connections) == (1, 1)


# Item 8: an Idempotency-Key names one command body.


async def test_idempotency_key_reused_with_another_body_is_409(api: httpx.AsyncClient) -> None:
    """Same key and body returns the original; another command or args under that key is 409 naming it."""
    headers = {"Idempotency-Key": "deploy-7"}
    url = "/devices/idem-1/commands"
    first = await api.post(url, json={"command": "echo", "args": {"a": 1, "b": [2]}}, headers=headers)
    assert first.status_code == 200
    again = await api.post(url, json={"args": {"b": [2], "a": 1}, "command": "echo"}, headers=headers)
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["duplicate"]) == (first.json()["id"], True)
    for other in (
        {"command": "echo", "args": {"a": 2, "b": [2]}},
        {"command": "ping", "args": {"a": 1, "b": [2]}},
    ):
        conflict = await api.post(url, json=other, headers=headers)
        assert conflict.status_code == 409, conflict.text
        assert "deploy-7" in conflict.json()["detail"]
    listed = (await api.get(f"{url}")).json()["commands"]
    assert [c["id"] for c in listed] == [first.json()["id"]]


async def test_idempotency_key_of_a_cancelled_command_still_conflicts(api: httpx.AsyncClient) -> None:
    """After the original is cancelled, its key still returns it for the same body and is 409 for another."""
    headers = {"Idempotency-Key": "reboot-1"}
    url = "/devices/idem-2/commands"
    original = (await api.post(url, json={"command": "reboot"}, headers=headers)).json()
    assert (await api.delete(f"{url}/{original['id']}")).status_code == 200
    conflict = await api.post(url, json={"command": "reboot", "args": {"force": True}}, headers=headers)
    assert conflict.status_code == 409 and "reboot-1" in conflict.json()["detail"]
    same = await api.post(url, json={"command": "reboot", "args": None}, headers=headers)
    assert same.status_code == 200
    assert (same.json()["id"], same.json()["status"]) == (original["id"], "cancelled")
    assert (await api.get(f"{url}/next")).json() is None


# Item 9: commands may expire; one for a device never seen does by default.


async def post(api: httpx.AsyncClient, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(f"/devices/{device_id}/commands", json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def status(api: httpx.AsyncClient, device_id: str, command_id: int) -> str:
    return str((await api.get(f"/devices/{device_id}/commands/{command_id}")).json()["status"])


async def test_ttl_command_expires_undelivered_and_is_never_sent(hub_factory: HubFactory) -> None:
    """A command past its ttl is marked expired by the sweep, never returned or pushed; FIFO goes on."""
    hub = await hub_factory(expiry_check_interval=0.05)
    async with client(hub) as api, hub.hub.bus.subscribe() as events:
        short = await post(api, "ttl-1", {"command": "ping", "ttl": 0.3})
        assert (short["ok"], short["status"], short["duplicate"]) == (True, "pending", False)
        assert (short["device_known"], short["device_online"]) == (False, False)
        assert to_epoch(short["expires_at"]) == pytest.approx(to_epoch(short["created_at"]) + 0.3, abs=1e-3)
        later = await post(api, "ttl-1", {"command": "echo", "args": {"n": 1}})
        expired = await settled(events, short["id"])
        assert expired.state is CommandState.EXPIRED and expired.success is None
        assert await status(api, "ttl-1", short["id"]) == "expired"
        polled = (await api.get("/devices/ttl-1/commands/next")).json()
        assert polled["id"] == later["id"]
        async with await connect_agent(hub, "ttl-1") as ws:
            assert (await next_frame(ws, "command"))["id"] == later["id"]


async def test_past_due_command_is_marked_expired_when_read(hub_factory: HubFactory) -> None:
    """With no sweep due, reading a past-due command (detail, list, next, socket backlog) marks it expired."""
    hub = await hub_factory(expiry_check_interval=3600)
    store, past = hub.hub.store, time.time() - 1
    ids = {d: (await store.create_command(d, "ping", None, past - 1, expires_at=past))[0].id for d in "abcd"}
    async with client(hub) as api, hub.hub.bus.subscribe() as events:
        assert await status(api, "a", ids["a"]) == "expired"
        assert (await settled(events, ids["a"])).state is CommandState.EXPIRED
        listed = (await api.get("/devices/b/commands")).json()["commands"]
        assert [(c["id"], c["status"]) for c in listed] == [(ids["b"], "expired")]
        assert (await api.get("/devices/c/commands/next")).json() is None
        assert await status(api, "c", ids["c"]) == "expired"
        async with await connect_agent(hub, "d") as ws:
            marker = await enqueue(api, "d", "marker")
            assert (await next_frame(ws, "command"))["id"] == marker
        assert await status(api, "d", ids["d"]) == "expired"


async def test_expired_after_delivery_ignores_late_acks_and_is_not_resent(hub_factory: HubFactory) -> None:
    """A delivered command that expires stays so: a late ack changes nothing, cancel is 409, no resend."""
    hub = await hub_factory(expiry_check_interval=0.05)
    async with client(hub) as api, hub.hub.bus.subscribe() as events:
        async with await connect_agent(hub, "late-1") as ws:
            queued = await post(api, "late-1", {"command": "ping", "ttl": 0.3})
            assert (queued["device_known"], queued["device_online"]) == (True, True)
            assert (await next_frame(ws, "command"))["id"] == queued["id"]
            assert (await settled(events, queued["id"])).state is CommandState.EXPIRED
            await send(ws, {"type": "ack", "id": queued["id"], "success": True, "message": "pong"})
            assert await next_frame(ws, "acked") == {"type": "acked", "id": queued["id"]}
        late = await api.post(f"/devices/late-1/commands/{queued['id']}/ack", json={"success": True})
        assert late.status_code == 200 and late.json()["status"] == "expired"
        stored = (await api.get(f"/devices/late-1/commands/{queued['id']}")).json()
        assert (stored["status"], stored["success"], stored["acked_at"]) == ("expired", None, None)
        cancel = await api.delete(f"/devices/late-1/commands/{queued['id']}")
        assert cancel.status_code == 409 and "expired" in cancel.json()["detail"]
        async with await connect_agent(hub, "late-1") as ws:
            marker = await enqueue(api, "late-1", "marker")
            assert (await next_frame(ws, "command"))["id"] == marker


async def test_unseen_device_gets_the_default_ttl_and_a_known_one_none(hub_factory: HubFactory) -> None:
    """MONITOR_UNSEEN_COMMAND_TTL bounds commands for devices never seen; known ones wait; 0 means never."""
    hub = await hub_factory(unseen_command_ttl=600)
    async with client(hub) as api:
        unseen = await post(api, "nobody", {"command": "ping"})
        assert to_epoch(unseen["expires_at"]) == pytest.approx(to_epoch(unseen["created_at"]) + 600, abs=1e-3)
        assert (unseen["device_known"], unseen["device_online"]) == (False, False)
        own = await post(api, "nobody", {"command": "ping", "ttl": 5})
        assert to_epoch(own["expires_at"]) == pytest.approx(to_epoch(own["created_at"]) + 5, abs=1e-3)
        sample = {"device_id": "seen-1", "hostname": "h", "cpu": 1.0, "ram": 2.0, "disk": 3.0}
        assert (await api.post("/ingest", json=sample)).status_code == 200
        known = await post(api, "seen-1", {"command": "ping"})
        assert (known["expires_at"], known["device_known"], known["device_online"]) == (None, True, True)
    never = await hub_factory(unseen_command_ttl=0)
    async with client(never) as api:
        assert (await post(api, "nobody", {"command": "ping"}))["expires_at"] is None


async def test_expiry_fields_are_checked(api: httpx.AsyncClient) -> None:
    """ttl > 0 or expires_at (ISO-8601 or epoch, not past), never both; bad ones are 422 and queue nothing."""
    url = "/devices/exp-1/commands"
    for bad in (
        {"command": "x", "ttl": 5, "expires_at": time.time() + 60},
        {"command": "x", "ttl": 0},
        {"command": "x", "ttl": "5"},
        {"command": "x", "expires_at": "tomorrow"},
        {"command": "x", "expires_at": time.time() - 60},
    ):
        response = await api.post(url, json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert (await api.get(url)).json()["commands"] == []
    iso = await post(api, "exp-1", {"command": "x", "expires_at": "2099-01-01T00:00:00Z"})
    assert iso["expires_at"] == "2099-01-01T00:00:00Z"
    epoch = await post(api, "exp-1", {"command": "x", "expires_at": 4_070_908_800})
    assert epoch["expires_at"] == "2099-01-01T00:00:00Z"


async def test_schema_1_database_gains_expiry_and_keeps_its_commands(tmp_path: Path) -> None:
    """A database written before expiry existed is migrated in place: its commands stay, never expiring."""
    path = tmp_path / "old.db"
    async with aiosqlite.connect(path, isolation_level=None) as old:
        await old.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version=1; COMMIT;")
        await old.execute(
            "INSERT INTO commands (device_id, command, args, state, created_at) VALUES (?, ?, ?, ?, ?)",
            ("old-1", "ping", None, "pending", 1.0),
        )
    store = SQLiteStore(path)
    await store.open()
    try:
        (kept,) = await store.open_commands("old-1", at=time.time())
        assert (kept.command, kept.state, kept.expires_at) == ("ping", CommandState.PENDING, None)
        assert await store.expire_commands(time.time()) == []
    finally:
        await store.close()
    async with aiosqlite.connect(path) as again, again.execute("PRAGMA user_version") as cur:
        assert await cur.fetchone() == (SCHEMA_VERSION,)
