"""Who is online: WebSocket sessions and HTTP-only ingesters, every transition stored and published.

State changes are decided in memory (synchronously, so concurrent coroutines agree) and then
written to the store in order and published on the bus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from monitor_server.bus import EventBus
from monitor_server.events import DeviceDetails, PresenceChanged
from monitor_server.group_commit import GroupCommit
from monitor_server.store import Device, PresenceEvent, Store
from protocol.codes import PresenceReason

log = logging.getLogger("monitor_server.presence")

WS = "ws"
HTTP = "http"
# HTTP devices' timeouts stored per transaction: the devices first seen in one burst time out in
# one sweep, and its writes are cut so that a command's commit never waits behind all of them
# (1,000 cost about 13 ms of CPU in all here, storing included).
TIMEOUT_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class Online:
    connection: str
    since: float


def expired(last_seen: dict[str, float], now: float, window: float) -> list[str]:
    """Devices whose last HTTP ingest is more than ``window`` seconds old.

    ``last_seen`` holds its devices oldest contact first (``Presence`` moves a device to the end
    on each contact), so the scan stops at the first device still inside the window: a sweep
    costs the devices it times out, not every HTTP device (a full scan of 100,000 took 3 ms of
    the event loop every second on the bench machine). Should the clock step back, a device
    behind a later one waits for it, at most the size of the step.
    """
    gone: list[str] = []
    for device, seen in last_seen.items():
        if now - seen <= window:
            break
        gone.append(device)
    return gone


def _last_seen(device: Device) -> float:
    return device.last_seen or 0.0


class Presence:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        http_window: float,
        clock: Callable[[], float] = time.time,
        hub_id: str | None = None,
    ) -> None:
        self._store = store
        # Several hubs (DESIGN §13): the sessions this hub records are its own; it records a device
        # offline only while no other hub has recorded it online since.
        self._hub_id = hub_id
        self._bus = bus
        self._window = http_window
        self._clock = clock
        self._online: dict[str, Online] = {}
        self._http_seen: dict[str, float] = {}
        # Keeps each device's stored transitions in the order they were decided; devices do not
        # wait for each other (PostgreSQL commits several at once: a storm of hellos is not serial).
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # Transitions that arrive together go in one transaction (a storm of hellos, a burst of
        # first-seen HTTP devices, and their timeouts a window later), each still in its
        # device's order; an offline one is stored only if no other hub holds the session.
        self._onlines: GroupCommit[PresenceEvent, None] = GroupCommit(self._store_onlines)
        self._offlines: GroupCommit[PresenceEvent, frozenset[PresenceEvent]] = GroupCommit(
            self._store_offlines
        )
        self.listeners: list[Callable[[PresenceEvent], None]] = []  # told each stored transition (alerts)

    def is_online(self, device_id: str) -> bool:
        return device_id in self._online

    def ws_since(self, device_id: str) -> float | None:
        """When this hub's WebSocket session of the device began (None: it holds none)."""
        current = self._online.get(device_id)
        return current.since if current is not None and current.connection == WS else None

    def online_count(self) -> int:
        return len(self._online)

    async def rebuild(self, live_hubs: frozenset[str] = frozenset()) -> None:
        """After a restart no WebSocket session survives; HTTP devices keep their window.

        Devices online on another hub still alive (``live_hubs``) are theirs, and left alone.
        """
        now = self._clock()
        gone: list[PresenceEvent] = []
        for device in sorted(await self._store.list_devices(), key=_last_seen):  # ``expired``'s order
            if not device.online or device.hub_id in live_hubs:
                continue
            if device.connection == HTTP and device.last_seen and now - device.last_seen <= self._window:
                self._online[device.device_id] = Online(HTTP, device.presence_since or now)
                self._http_seen[device.device_id] = device.last_seen
            else:
                gone.append(
                    PresenceEvent(device.device_id, False, PresenceReason.HUB_RESTART, device.connection, now)
                )
        if gone:
            # One transaction, not one per device: 5,000 agents made a restart take seconds.
            await self._store.set_presence_many(gone)
            log.info("%d devices offline (hub_restart)", len(gone))
            for event in gone:
                self._bus.publish(PresenceChanged.of(event))

    async def ws_connected(self, device_id: str, details: DeviceDetails | None = None) -> None:
        """A session said hello; ``details`` (what it reported) ride on the ``connected`` event."""
        self._http_seen.pop(device_id, None)
        current = self._online.get(device_id)
        if current is not None and current.connection == WS:
            return
        now = self._clock()
        self._online[device_id] = Online(WS, now)
        await self._record(device_id, True, PresenceReason.CONNECTED, WS, now, details)

    async def ws_disconnected(self, device_id: str, reason: PresenceReason) -> None:
        if self._online.pop(device_id, None) is None:
            return
        await self._record(device_id, False, reason, WS, self._clock())

    async def http_ingest(
        self,
        device_id: str,
        store: Callable[[PresenceEvent | None], asyncio.Future[None]],
        details: DeviceDetails | None = None,
    ) -> None:
        """An HTTP ingest: online now (unless a WebSocket session already says so).

        ``store`` queues the request's sample with the transition this makes (None if none) and
        returns its commit's future: a first-seen device goes online in its sample's transaction.
        Returns once committed. ``details`` (from the payload) ride on the ``ingest`` event.
        """
        event = self._http_online(device_id)
        if event is None:
            await asyncio.shield(store(None))
            return
        async with self._device_lock(device_id):  # after the device's earlier transitions
            stored = store(event)
            stored.add_done_callback(partial(self._stored_online, event, details))
            await asyncio.shield(stored)

    async def http_seen(self, device_id: str, details: DeviceDetails | None = None) -> None:
        """An HTTP contact without a sample: its transition (if any) in a transaction of its own."""
        await self.http_ingest(device_id, self._store_alone, details)

    def _http_online(self, device_id: str) -> PresenceEvent | None:
        """Note an HTTP contact; the transition it makes, decided now (None: already online)."""
        current = self._online.get(device_id)
        if current is not None and current.connection == WS:
            return None
        now = self._clock()
        self._http_seen.pop(device_id, None)  # to the end: the dict stays in order of contact
        self._http_seen[device_id] = now
        if current is not None:
            return None
        self._online[device_id] = Online(HTTP, now)
        return PresenceEvent(device_id, True, PresenceReason.INGEST, HTTP, now)

    def _store_alone(self, event: PresenceEvent | None) -> asyncio.Future[None]:
        if event is None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return asyncio.ensure_future(self._onlines.submit(event))

    def _stored_online(
        self, event: PresenceEvent, details: DeviceDetails | None, done: asyncio.Future[None]
    ) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # not stored: the hub gave up at shutdown (its next start rebuilds presence)
        self._stored(event, details)

    async def reclaim(self, device_ids: list[str]) -> None:
        """This hub was taken for dead while holding these sessions: record them online again."""
        for device_id in device_ids:
            if device_id in self._online and self._online[device_id].connection == WS:
                await self._record(device_id, True, PresenceReason.CONNECTED, WS, self._clock())

    def forget(self, device_id: str) -> None:
        """A removed device: no longer online, and its socket's close records no transition."""
        self._online.pop(device_id, None)
        self._http_seen.pop(device_id, None)

    async def sweep(self) -> None:
        """Every HTTP device silent past the window goes offline, decided at once and stored
        together (the devices first seen in one burst time out in one)."""
        now = self._clock()
        gone = expired(self._http_seen, now, self._window)
        for device_id in gone:
            del self._http_seen[device_id]
            self._online.pop(device_id, None)
        busy = [d for d in gone if d in self._locks]  # a transition in flight: stored after it
        await asyncio.gather(
            self._time_out([d for d in gone if d not in self._locks], now),
            *(self._record(d, False, PresenceReason.TIMEOUT, HTTP, now) for d in busy),
        )

    async def _time_out(self, device_ids: list[str], at: float) -> None:
        """Store these devices' timeouts, ``TIMEOUT_CHUNK`` per transaction, without a task, a
        lock wait and a group commit each; every device's lock is held until its chunk is
        stored, so a transition decided meanwhile is stored after its timeout."""
        for device_id in device_ids:  # free locks: taken without yielding, all before any write
            await self._join(device_id).acquire()
        done = 0
        try:
            while done < len(device_ids):
                chunk = device_ids[done : done + TIMEOUT_CHUNK]
                events = [PresenceEvent(d, False, PresenceReason.TIMEOUT, HTTP, at) for d in chunk]
                kept = frozenset(await self._store.set_offline_many(events, self._hub_id))
                done += len(chunk)
                for device_id in chunk:
                    self._release(device_id)
                for event in events:
                    if event in kept:
                        self._stored(event)
        finally:
            for device_id in device_ids[done:]:
                self._release(device_id)

    def _release(self, device_id: str) -> None:
        self._locks[device_id][0].release()
        self._leave(device_id)

    async def run_sweeper(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("presence sweep failed; retrying next interval")

    async def _record(
        self,
        device_id: str,
        online: bool,
        reason: str,
        connection: str | None,
        at: float,
        details: DeviceDetails | None = None,
    ) -> None:
        async with self._device_lock(device_id):
            event = await self._store_one(device_id, online, reason, connection, at)
        if event is None:
            log.debug("device %s: offline here, online on another hub", device_id)
            return
        self._stored(event, details)

    def _stored(self, event: PresenceEvent, details: DeviceDetails | None = None) -> None:
        log.info("device %s %s (%s)", event.device_id, "online" if event.online else "offline", event.reason)
        self.announce(event, details)

    async def _store_one(
        self, device_id: str, online: bool, reason: str, connection: str | None, at: float
    ) -> PresenceEvent | None:
        event = PresenceEvent(device_id, online, reason, connection, at)
        if not online:
            return event if event in await self._offlines.submit(event) else None
        await self._onlines.submit(event)
        return event

    async def _store_onlines(self, events: list[PresenceEvent]) -> None:
        await self._store.set_presence_many(events, self._hub_id, claim=True)

    async def _store_offlines(self, events: list[PresenceEvent]) -> frozenset[PresenceEvent]:
        return frozenset(await self._store.set_offline_many(events, self._hub_id))

    @asynccontextmanager
    async def _device_lock(self, device_id: str) -> AsyncIterator[None]:
        lock = self._join(device_id)
        try:
            async with lock:
                yield
        finally:
            self._leave(device_id)

    def _join(self, device_id: str) -> asyncio.Lock:
        """The device's lock, counted as wanted until ``_leave`` (the last one out drops it)."""
        lock, users = self._locks.setdefault(device_id, (asyncio.Lock(), [0]))
        users[0] += 1
        return lock

    def _leave(self, device_id: str) -> None:
        users = self._locks[device_id][1]
        users[0] -= 1
        if not users[0]:
            del self._locks[device_id]

    def announce(self, event: PresenceEvent, details: DeviceDetails | None = None) -> None:
        """Tell the listeners (alerts) and the dashboards of a stored transition.

        Also for those stored elsewhere: a dead hub's devices taken over by this one (``hub_lost``).
        """
        for listener in self.listeners:
            listener(event)
        self._bus.publish(PresenceChanged.of(event, details))
