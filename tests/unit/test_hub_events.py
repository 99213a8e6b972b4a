"""The hub's bus events: the JSON each one gives the dashboard, and how presence builds them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

import pytest

from monitor_server.bus import EventBus
from monitor_server.events import (
    CommandEvent,
    DeviceDetails,
    HubEvent,
    PresenceChanged,
    SampleEvent,
)
from monitor_server.presence import Presence
from monitor_server.store import Command, PresenceEvent, Sample, Store
from protocol import CommandState, Hello

AT = 1_700_000_000.0
AT_ISO = "2023-11-14T22:13:20Z"


def test_iso_constant_matches_the_store_format() -> None:
    """The expected timestamps below are the store's own ISO rendering of ``AT``."""
    assert PresenceEvent("d", True, "connected", "ws", AT).to_json()["at"] == AT_ISO


def test_sample_event_json_is_type_device_then_the_sample() -> None:
    """A sample event is ``type``, ``device_id``, ISO ``ts``, the core metrics and every extra field."""
    sample = Sample("edge-1", AT, 12.5, 40.0, 70.0, 3600, "ok", {"hostname": "edge", "load_1": 0.5})
    event = SampleEvent.of(sample)
    assert event.device_id == "edge-1"
    assert event.to_json() == {
        "type": "sample",
        "device_id": "edge-1",
        "ts": AT_ISO,
        "cpu": 12.5,
        "ram": 40.0,
        "disk": 70.0,
        "uptime_sec": 3600,
        "status": "ok",
        "hostname": "edge",
        "load_1": 0.5,
    }


def test_offline_presence_json_is_unchanged_and_carries_no_details() -> None:
    """An offline event is exactly the stored transition plus ``type``: no hostname/version keys."""
    event = PresenceChanged.of(PresenceEvent("edge-1", False, "timeout", "ws", AT))
    assert event.device_id == "edge-1"
    assert event.to_json() == {
        "type": "presence",
        "device_id": "edge-1",
        "online": False,
        "reason": "timeout",
        "connection": "ws",
        "at": AT_ISO,
    }


def test_connected_presence_json_carries_the_reported_details() -> None:
    """A connected event with details adds hostname, agent_version and platform to the JSON."""
    details = DeviceDetails(hostname="edge.lan", agent_version="2.1.0", platform="linux")
    event = PresenceChanged.of(PresenceEvent("edge-1", True, "connected", "ws", AT), details)
    assert event.to_json() == {
        "type": "presence",
        "device_id": "edge-1",
        "online": True,
        "reason": "connected",
        "connection": "ws",
        "at": AT_ISO,
        "hostname": "edge.lan",
        "agent_version": "2.1.0",
        "platform": "linux",
    }


def test_details_that_report_nothing_are_left_out() -> None:
    """Details with every field unreported are dropped, so the page knows the event lacks them."""
    event = PresenceChanged.of(PresenceEvent("h", True, "ingest", "http", AT), DeviceDetails())
    assert event.details is None and "hostname" not in event.to_json()


def test_partial_details_keep_unreported_fields_as_null() -> None:
    """An HTTP agent reports hostname and version but no platform: platform is null, not absent."""
    details = DeviceDetails(hostname="h.lan", agent_version="1.0")
    body = PresenceChanged.of(PresenceEvent("h", True, "ingest", "http", AT), details).to_json()
    assert (body["hostname"], body["agent_version"], body["platform"]) == ("h.lan", "1.0", None)


def test_details_from_a_hello_treat_empty_strings_as_unreported() -> None:
    """``DeviceDetails.of(hello)`` copies the hello's fields, empty ones becoming ``None``."""
    hello = Hello(protocol=1, device_id="edge-1", hostname="edge.lan", agent_version="", platform="linux")
    assert DeviceDetails.of(hello) == DeviceDetails("edge.lan", None, "linux")


def test_command_event_json_is_type_plus_the_command_record() -> None:
    """A command event is the REST command record plus ``type``."""
    command = Command(7, "edge-1", "echo", {"text": "hi"}, CommandState.DELIVERED, AT, delivered_at=AT)
    event = CommandEvent.of(command)
    assert event.device_id == "edge-1"
    assert event.to_json() == {
        "type": "command",
        "id": 7,
        "device_id": "edge-1",
        "command": "echo",
        "args": {"text": "hi"},
        "status": "delivered",
        "created_at": AT_ISO,
        "delivered_at": AT_ISO,
        "acked_at": None,
        "cancelled_at": None,
        "success": None,
        "message": None,
        "result": None,
        "expires_at": None,
    }


def test_events_are_frozen() -> None:
    """Bus events are shared by every subscriber, so none can be changed after publishing."""
    event = PresenceChanged.of(PresenceEvent("d", True, "connected", "ws", AT))
    with pytest.raises(AttributeError):
        event.details = DeviceDetails("x")  # type: ignore[misc]


class TransitionStore:
    """Just what ``Presence`` needs of a store to record a transition: it echoes the record."""

    async def set_presence(
        self,
        device_id: str,
        online: bool,
        reason: str,
        connection: str | None,
        at: float,
        hub: str | None = None,
    ) -> PresenceEvent:
        return PresenceEvent(device_id, online, reason, connection, at)

    async def set_presence_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None, *, claim: bool = False
    ) -> None:
        return None

    async def set_offline_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None
    ) -> list[PresenceEvent]:
        return list(events)


async def transitions(steps: Callable[[Presence], Awaitable[None]]) -> list[HubEvent]:
    """What ``Presence`` publishes while ``steps`` run."""
    bus = EventBus()
    presence = Presence(cast(Store, TransitionStore()), bus, http_window=60, clock=lambda: AT)
    events: list[HubEvent] = []
    async with bus.subscribe() as sub:
        await steps(presence)
        while sub.pending():
            event = await sub.get()
            assert event is not None
            events.append(event)
    return events


async def test_ws_connected_publishes_the_hello_details() -> None:
    """``ws_connected(id, details)`` puts the details on the connected event; the offline one has none."""
    details = DeviceDetails("edge.lan", "2.1.0", "linux")

    async def steps(presence: Presence) -> None:
        await presence.ws_connected("edge-1", details)
        await presence.ws_disconnected("edge-1", "disconnected")

    online, offline = await transitions(steps)
    assert isinstance(online, PresenceChanged) and online.details == details
    assert online.to_json()["platform"] == "linux"
    assert isinstance(offline, PresenceChanged) and "hostname" not in offline.to_json()


async def test_ws_connected_without_details_still_type_checks_and_publishes() -> None:
    """The one-argument call still works: the connected event then simply lacks details."""

    async def steps(presence: Presence) -> None:
        await presence.ws_connected("edge-1")

    [online] = await transitions(steps)
    assert online.to_json() == {
        "type": "presence",
        "device_id": "edge-1",
        "online": True,
        "reason": "connected",
        "connection": "ws",
        "at": AT_ISO,
    }


async def test_http_seen_publishes_payload_details_once() -> None:
    """The first ingest's online event carries hostname/version; later ingests publish nothing."""

    async def steps(presence: Presence) -> None:
        await presence.http_seen("h", DeviceDetails(hostname="h.lan", agent_version="1.0"))
        await presence.http_seen("h", DeviceDetails(hostname="h.lan", agent_version="1.0"))

    [online] = await transitions(steps)
    assert online.to_json()["reason"] == "ingest"
    assert online.to_json()["hostname"] == "h.lan" and online.to_json()["agent_version"] == "1.0"


class GatedStore(TransitionStore):
    """Holds the first offline transition until ``release`` is set (a slow commit)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def set_presence(
        self,
        device_id: str,
        online: bool,
        reason: str,
        connection: str | None,
        at: float,
        hub: str | None = None,
    ) -> PresenceEvent:
        if not online and not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return PresenceEvent(device_id, online, reason, connection, at)

    async def set_offline_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None
    ) -> list[PresenceEvent]:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return list(events)


async def test_a_device_that_says_hello_during_a_sweep_is_left_online() -> None:
    """Two HTTP devices expire; while they are recorded offline the second says hello over a
    WebSocket: it ends online (the sweep once raised KeyError and stopped there)."""
    clock = [0.0]
    store = GatedStore()
    presence = Presence(cast(Store, store), EventBus(), http_window=60, clock=lambda: clock[0])
    await presence.http_seen("a")
    await presence.http_seen("b")
    clock[0] = 100.0
    sweep = asyncio.ensure_future(presence.sweep())
    await store.entered.wait()
    hello = asyncio.ensure_future(presence.ws_connected("b"))  # stored after b's offline
    await asyncio.sleep(0)
    assert presence.is_online("b")  # decided at once, in memory
    store.release.set()
    await asyncio.gather(sweep, hello)
    assert not presence.is_online("a") and presence.is_online("b")
