"""Presence in the store (DESIGN §6), and which hub holds a device's session (DESIGN §13)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from monitor_server.bus import EventBus
from monitor_server.ingest import SampleWriter
from monitor_server.presence import TIMEOUT_CHUNK, Presence
from monitor_server.store import PresenceEvent, Sample, Store
from protocol.codes import PresenceReason

T0 = 1_800_000_000.0


async def test_online_then_offline_is_stored_and_listed_newest_first(store: Store) -> None:
    """Each transition sets the device row and is recorded; events come back newest first."""
    on = await store.set_presence("d1", True, "connected", "ws", T0)
    assert on == PresenceEvent("d1", True, "connected", "ws", T0)
    device = await store.get_device("d1")
    assert device is not None and device.first_seen == T0
    assert (device.online, device.connection, device.presence_reason, device.presence_since) == (
        True,
        "ws",
        "connected",
        T0,
    )
    off = await store.set_presence("d1", False, "timeout", "ws", T0 + 5)
    assert off == PresenceEvent("d1", False, "timeout", "ws", T0 + 5)
    assert await store.presence_events("d1", 10) == [off, on]
    assert await store.presence_events("d1", 1) == [off]
    device = await store.get_device("d1")
    assert device is not None and not device.online and device.presence_reason == "timeout"


async def test_online_records_the_hub_holding_the_session(store: Store) -> None:
    """Going online through a hub makes it the holder; going offline releases it."""
    await store.set_presence("d1", True, "connected", "ws", T0, hub="hub-a")
    device = await store.get_device("d1")
    assert device is not None and device.hub_id == "hub-a"
    assert "hub_id" not in device.to_json()
    await store.set_presence("d1", False, "disconnected", "ws", T0 + 1, hub="hub-a")
    device = await store.get_device("d1")
    assert device is not None and device.hub_id is None and not device.online


async def test_late_offline_from_a_hub_that_lost_the_session_changes_nothing(store: Store) -> None:
    """The agent moved to hub B; hub A's offline for its old socket returns None and stores nothing."""
    await store.set_presence("d1", True, "connected", "ws", T0, hub="hub-a")
    moved = await store.set_presence("d1", True, "connected", "ws", T0 + 1, hub="hub-b")
    assert await store.set_presence("d1", False, "disconnected", "ws", T0 + 2, hub="hub-a") is None
    device = await store.get_device("d1")
    assert device is not None and device.online and device.hub_id == "hub-b"
    assert device.presence_since == T0 + 1
    assert (await store.presence_events("d1", 10))[0] == moved


async def test_offline_without_hub_or_from_no_holder_always_applies(store: Store) -> None:
    """An offline without a hub (a single hub), or for a device no hub holds, is stored."""
    await store.set_presence("d1", True, "connected", "ws", T0, hub="hub-a")
    assert await store.set_presence("d1", False, "timeout", "ws", T0 + 1) is not None
    device = await store.get_device("d1")
    assert device is not None and not device.online and device.hub_id is None
    # no holder now: any hub's offline applies (and a new device is created by it)
    assert await store.set_presence("d1", False, "timeout", "ws", T0 + 2, hub="hub-b") is not None
    assert await store.set_presence("d2", False, "timeout", None, T0 + 3, hub="hub-b") is not None
    assert [e.at for e in await store.presence_events("d1", 10)] == [T0 + 2, T0 + 1, T0]
    new = await store.get_device("d2")
    assert new is not None and new.first_seen == T0 + 3 and not new.online


async def test_online_without_hub_clears_the_holder(store: Store) -> None:
    """set_presence(online) stores the hub it is given, None included (a single hub)."""
    await store.set_presence("d1", True, "connected", "ws", T0, hub="hub-a")
    await store.set_presence("d1", True, "ingest", "http", T0 + 1)
    device = await store.get_device("d1")
    assert device is not None and device.online and device.hub_id is None


async def test_set_presence_many_in_one_call(store: Store) -> None:
    """Many transitions at once: every event recorded in order, the last per device wins, offline
    ones release the holding hub and online ones keep it."""
    await store.set_presence("a", True, "connected", "ws", T0, hub="hub-a")
    await store.set_presence("b", True, "connected", "ws", T0, hub="hub-a")
    events = [
        PresenceEvent("a", False, "hub_restart", "ws", T0 + 1),
        PresenceEvent("b", True, "ingest", "http", T0 + 1),
        PresenceEvent("c", True, "ingest", "http", T0 + 2),
        PresenceEvent("c", False, "timeout", "http", T0 + 3),
    ]
    await store.set_presence_many(events)
    devices = {d.device_id: d for d in await store.list_devices()}
    assert {k: (d.online, d.hub_id, d.presence_reason) for k, d in devices.items()} == {
        "a": (False, None, "hub_restart"),
        "b": (True, "hub-a", "ingest"),
        "c": (False, None, "timeout"),
    }
    assert devices["c"].first_seen == T0 + 2
    assert await store.presence_events("c", 10) == [events[3], events[2]]
    await store.set_presence_many([])


async def test_set_presence_many_claiming_records_sessions_held_by_the_hub(store: Store) -> None:
    """Online transitions stored together (one group commit of hellos): each device is online,
    held by the hub that claims it, first seen then, and its event recorded."""
    await store.set_presence("b", True, "connected", "ws", T0, hub="hub-b")
    events = [
        PresenceEvent("a", True, "connected", "ws", T0 + 1),
        PresenceEvent("b", True, "connected", "ws", T0 + 2),
        PresenceEvent("c", True, "ingest", "http", T0 + 3),
    ]
    await store.set_presence_many(events, "hub-a", claim=True)
    devices = {d.device_id: d for d in await store.list_devices()}
    assert {k: (d.online, d.hub_id, d.connection, d.presence_since) for k, d in devices.items()} == {
        "a": (True, "hub-a", "ws", T0 + 1),
        "b": (True, "hub-a", "ws", T0 + 2),
        "c": (True, "hub-a", "http", T0 + 3),
    }
    assert (devices["a"].first_seen, devices["b"].first_seen) == (T0 + 1, T0)
    assert await store.presence_events("b", 10) == [
        events[1],
        PresenceEvent("b", True, "connected", "ws", T0),
    ]
    # On one hub (no hub id) a claim leaves no holder, as ``set_presence`` does.
    await store.set_presence_many([PresenceEvent("a", True, "ingest", "http", T0 + 4)], None, claim=True)
    device = await store.get_device("a")
    assert device is not None and device.hub_id is None and device.connection == "http"


async def test_mark_hub_lost_takes_only_that_hubs_online_devices_offline(store: Store) -> None:
    """Devices online through the lost hub go offline (hub_lost), in device order; others stay."""
    for device, hub in (("z1", "lost"), ("a1", "lost"), ("m1", "alive")):
        await store.set_presence(device, True, "connected", "ws", T0, hub=hub)
    await store.set_presence("gone", True, "connected", "ws", T0, hub="lost")
    await store.set_presence("gone", False, "disconnected", "ws", T0 + 1, hub="lost")
    lost = await store.mark_hub_lost("lost", T0 + 20)
    assert lost == [
        PresenceEvent("a1", False, PresenceReason.HUB_LOST, "ws", T0 + 20),
        PresenceEvent("z1", False, PresenceReason.HUB_LOST, "ws", T0 + 20),
    ]
    devices = {d.device_id: d for d in await store.list_devices()}
    assert [(d.online, d.hub_id) for d in (devices["a1"], devices["z1"])] == [(False, None)] * 2
    assert devices["a1"].presence_reason == "hub_lost" and devices["a1"].presence_since == T0 + 20
    assert (devices["m1"].online, devices["m1"].hub_id) == (True, "alive")
    assert (await store.presence_events("z1", 1))[0].reason == "hub_lost"
    assert len(await store.presence_events("gone", 10)) == 2
    assert await store.mark_hub_lost("lost", T0 + 30) == []


async def test_offline_many_stores_all_but_sessions_another_hub_holds(store: Store) -> None:
    """Offline transitions in one transaction, each checked as ``set_presence`` checks it: the
    device hub B took over stays online; the ones hub A or no hub holds, unknown ones included,
    go offline. Returned: the stored ones, in order."""
    for device, hub in (("d1", "hub-a"), ("d2", "hub-b"), ("d3", "hub-a")):
        await store.set_presence(device, True, "connected", "ws", T0, hub=hub)
    await store.set_presence("d4", True, "ingest", "http", T0)  # no holder (a single hub's record)
    offline = [PresenceEvent(d, False, "timeout", "ws", T0 + 1) for d in ("d3", "d2", "d1", "d4", "d5")]
    stored = await store.set_offline_many(offline, hub="hub-a")
    assert stored == [e for e in offline if e.device_id != "d2"]
    for device in ("d1", "d3", "d4", "d5"):
        row = await store.get_device(device)
        assert row is not None and not row.online and row.hub_id is None, device
        assert (await store.presence_events(device, 1))[0].at == T0 + 1
    held = await store.get_device("d2")
    assert held is not None and held.online and held.hub_id == "hub-b"
    assert [e.online for e in await store.presence_events("d2", 10)] == [True]
    assert await store.set_offline_many([], hub="hub-a") == []


async def test_offline_many_without_hub_stores_every_one(store: Store) -> None:
    await store.set_presence("d1", True, "connected", "ws", T0, hub="hub-b")
    offline = [PresenceEvent("d1", False, "hub_restart", "ws", T0 + 1)]
    assert await store.set_offline_many(offline) == offline
    row = await store.get_device("d1")
    assert row is not None and not row.online and row.hub_id is None


async def test_http_devices_that_time_out_together_are_stored_together(store: Store) -> None:
    """A burst of first-seen HTTP devices times out a window later: one transaction, every
    transition stored and published (it was one transaction per device)."""
    batches: list[int] = []
    real = store.set_offline_many

    async def counted(events: Sequence[PresenceEvent], hub: str | None = None) -> list[PresenceEvent]:
        batches.append(len(events))
        return await real(events, hub)

    store.set_offline_many = counted  # type: ignore[method-assign]
    clock, bus = [T0], EventBus()
    presence = Presence(store, bus, http_window=30, clock=lambda: clock[0])
    for n in range(300):
        await presence.http_seen(f"h{n:03d}")
    clock[0] = T0 + 31
    async with bus.subscribe() as published:
        await presence.sweep()
        assert published.pending() == 300
    assert batches == [300]
    assert presence.online_count() == 0
    for device in ("h000", "h150", "h299"):
        row = await store.get_device(device)
        assert row is not None and not row.online and row.presence_reason == "timeout"


async def test_samples_and_the_onlines_they_bring_are_stored_together(store: Store) -> None:
    """``write_samples`` stores the transitions it is given with the rows, the hub claiming them;
    one whose device has no row in the batch creates the device."""
    samples = [Sample("s1", T0, 1.0, 2.0, 3.0, 60, "ok"), Sample("s1", T0 + 1, 1.5, 2.0, 3.0, 61, "ok")]
    onlines = [
        PresenceEvent("s1", True, PresenceReason.INGEST, "http", T0 + 1),
        PresenceEvent("s2", True, PresenceReason.INGEST, "http", T0 + 2),
    ]
    await store.write_samples(samples, T0 + 2, onlines, hub="hub-a")
    for event in onlines:
        device = await store.get_device(event.device_id)
        assert device is not None and device.online and device.hub_id == "hub-a"
        assert (device.connection, device.presence_reason, device.presence_since) == (
            "http",
            "ingest",
            event.at,
        )
        assert await store.presence_events(event.device_id, 10) == [event]
    assert len(await store.query_samples("s1", None, None, 10)) == 2


async def test_a_refused_row_does_not_take_the_onlines_of_its_batch_down(store: Store) -> None:
    """The writer stores a batch's transitions on their own before it isolates a row the store
    refuses (an integer past 64 bits): the device goes online, its good rows are stored."""
    writer = SampleWriter(store, max_rows=100, hub_id="hub-a")
    good = [Sample("w1", T0 + i, 1.0, 2.0, 3.0, 60, "ok") for i in range(3)]
    bad = Sample("w1", T0 + 10, 1.0, 2.0, 3.0, 2**64 - 1, "ok")
    event = PresenceEvent("w1", True, PresenceReason.INGEST, "http", T0)
    done = [writer.submit(good[0], event), writer.submit(bad), *(writer.submit(s) for s in good[1:])]
    await writer.flush()
    await asyncio.gather(*done)
    assert writer.rows_refused == 1 and writer.rows_written == 3
    assert await store.presence_events("w1", 10) == [event]
    device = await store.get_device("w1")
    assert device is not None and device.online and device.hub_id == "hub-a"
    assert len(await store.query_samples("w1", None, None, 10)) == 3


async def test_a_large_burst_of_timeouts_is_stored_in_chunks_in_each_devices_order(store: Store) -> None:
    """2,500 HTTP devices timing out at once: three transactions (``TIMEOUT_CHUNK``), each device
    published once. An ingest decided while the first chunk is being stored waits for its
    device's timeout, so the store ends with the device online again."""
    batches: list[int] = []
    again: list[asyncio.Future[None]] = []
    real = store.set_offline_many
    clock, bus = [T0], EventBus()
    presence = Presence(store, bus, http_window=30, clock=lambda: clock[0])

    async def counted(events: Sequence[PresenceEvent], hub: str | None = None) -> list[PresenceEvent]:
        batches.append(len(events))
        if len(batches) == 1:  # h0000 comes back while its timeout is being stored
            again.append(asyncio.ensure_future(presence.http_seen("h0000")))
            for _ in range(20):  # yields, not time: unordered, its online would be stored by now
                await asyncio.sleep(0)
        return await real(events, hub)

    store.set_offline_many = counted  # type: ignore[method-assign]
    for start in range(0, 2_500, 500):
        await asyncio.gather(*(presence.http_seen(f"h{n:04d}") for n in range(start, start + 500)))
    clock[0] = T0 + 31
    async with bus.subscribe(maxsize=4_000) as published:
        await presence.sweep()
        await again[0]
        assert published.pending() == 2_501
    assert batches == [TIMEOUT_CHUNK, TIMEOUT_CHUNK, 500]
    assert [e.online for e in await store.presence_events("h0000", 10)] == [True, False, True]
    row = await store.get_device("h0000")
    assert row is not None and row.online
    for device in ("h0001", "h1500", "h2499"):
        row = await store.get_device(device)
        assert row is not None and not row.online and row.presence_reason == "timeout"


async def test_a_sweep_times_out_only_the_silent_and_a_contact_moves_a_device_back(store: Store) -> None:
    """The sweep reads the HTTP devices oldest contact first and stops at the first still in its
    window: a device heard again late is kept, the silent ones before and after it go offline."""
    clock, bus = [T0], EventBus()
    presence = Presence(store, bus, http_window=30, clock=lambda: clock[0])
    for n, at in enumerate((0, 1, 2, 3)):
        clock[0] = T0 + at
        await presence.http_seen(f"o{n}")
    clock[0] = T0 + 20
    await presence.http_seen("o0")  # heard again: now the newest contact
    clock[0] = T0 + 32.5  # o1 and o2 are past the window, o3 (T0 + 3) and o0 are not
    await presence.sweep()
    assert presence.online_count() == 2
    assert [await _online(store, d) for d in ("o0", "o1", "o2", "o3")] == [True, False, False, True]
    clock[0] = T0 + 51
    await presence.sweep()
    assert presence.online_count() == 0


async def test_after_a_restart_the_sweep_finds_http_devices_in_order_of_contact(store: Store) -> None:
    """``rebuild`` restores the HTTP devices oldest contact first, whatever order the store lists
    them in, so a later sweep times out every silent one."""
    for device, at in (("r-b", 10.0), ("r-a", 0.0), ("r-c", 5.0)):
        await store.set_presence(device, True, PresenceReason.INGEST, "http", T0 + at)
        await store.touch_device(device, T0 + at)
    clock = [T0 + 12]
    presence = Presence(store, EventBus(), http_window=30, clock=lambda: clock[0])
    await presence.rebuild()
    assert presence.online_count() == 3
    clock[0] = T0 + 37  # r-a and r-c are past the window, r-b is not
    await presence.sweep()
    assert presence.online_count() == 1
    assert [await _online(store, d) for d in ("r-a", "r-b", "r-c")] == [False, True, False]


async def _online(store: Store, device_id: str) -> bool:
    row = await store.get_device(device_id)
    assert row is not None
    return row.online
