"""Devices and raw samples in the store, the same on SQLite and PostgreSQL (DESIGN §7, §13)."""

from __future__ import annotations

import asyncio
import contextlib

import orjson

from monitor_server.store import Sample, Store

T0 = 1_800_000_000.5


def sample(device: str, ts: float, cpu: float | None = 10.0, **extra: object) -> Sample:
    return Sample(device, ts, cpu, 40.0, 70.0, 1234, "ok", dict(extra))


async def test_samples_round_trip_with_extra_fields_oldest_first(store: Store) -> None:
    """Typed columns, None values and arbitrary extra JSON come back exactly, in time order."""
    stored = [
        sample("d1", T0 + 2, load_1=0.25, nested={"a": [1, 2.5, None]}, label="x"),
        sample("d1", T0, cpu=None),
        Sample("d1", T0 + 1, 1.5, None, None, None, None, {}),
    ]
    await store.write_samples(stored, T0 + 3)
    found = await store.query_samples("d1", None, None, 100)
    assert found == [stored[1], stored[2], stored[0]]
    assert found[2].extra == {"load_1": 0.25, "nested": {"a": [1, 2.5, None]}, "label": "x"}


async def test_a_write_cancelled_at_any_step_leaves_the_store_writable(store: Store) -> None:
    """A task cancelled inside a write (a hub stopping its tasks) neither commits half of it nor
    leaves a transaction open that would fail every later write."""
    for turns in range(8):  # cancelled after 0, 1, ... turns of the loop: waiting, in BEGIN, ...
        task = asyncio.ensure_future(store.write_samples([sample("c", T0 + turns)], T0))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.write_samples([sample("d1", T0 + turns)], T0)
    assert len(await store.query_samples("d1", None, None, 100)) == 8


async def test_replayed_batch_is_stored_once(store: Store) -> None:
    """A batch sent again (lost confirmation) adds nothing: one row per device and time."""
    batch = [sample("d1", T0 + i, cpu=float(i)) for i in range(5)]
    await store.write_samples(batch, T0 + 10)
    await store.write_samples([*batch, sample("d1", T0 + 2, cpu=99.0)], T0 + 20)
    found = await store.query_samples("d1", None, None, 100)
    assert [s.cpu for s in found] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_duplicate_inside_one_batch_keeps_the_first(store: Store) -> None:
    """Two samples of one device at one time in a batch: the first one sent is the one stored."""
    await store.write_samples([sample("d1", T0 + 1, cpu=1.0), sample("d1", T0, cpu=5.0)], T0)
    await store.write_samples([sample("d1", T0, cpu=2.0), sample("d1", T0, cpu=3.0)], T0)
    assert [(s.ts, s.cpu) for s in await store.query_samples("d1", None, None, 10)] == [
        (T0, 5.0),
        (T0 + 1, 1.0),
    ]
    await store.write_samples([sample("d2", T0, cpu=2.0), sample("d2", T0, cpu=3.0)], T0)
    assert [s.cpu for s in await store.query_samples("d2", None, None, 10)] == [2.0]


async def test_query_samples_since_until_limit_keeps_the_newest(store: Store) -> None:
    """since/until are inclusive; limit keeps the newest rows, still returned oldest first."""
    await store.write_samples([sample("d1", T0 + i) for i in range(10)], T0)
    await store.write_samples([sample("d2", T0 + 5)], T0)
    window = await store.query_samples("d1", T0 + 2, T0 + 7, 100)
    assert [s.ts for s in window] == [T0 + i for i in range(2, 8)]
    newest = await store.query_samples("d1", T0 + 2, T0 + 7, 3)
    assert [s.ts for s in newest] == [T0 + 5, T0 + 6, T0 + 7]
    assert [s.ts for s in await store.query_samples("d1", None, T0 + 1, 100)] == [T0, T0 + 1]
    assert await store.query_samples("nobody", None, None, 10) == []


async def test_latest_sample_and_device_row_follow_the_newest_time(store: Store) -> None:
    """A late, older sample does not replace the latest payload; hostname and status are kept."""
    await store.write_samples([sample("d1", T0 + 5, hostname="h1", agent_version="1.2")], T0 + 6)
    await store.write_samples([sample("d1", T0 + 1, cpu=1.0, hostname="old")], T0 + 7)
    latest = await store.latest_sample("d1")
    assert latest is not None and latest.ts == T0 + 5 and latest.cpu == 10.0
    device = await store.get_device("d1")
    assert device is not None
    assert (device.hostname, device.agent_version, device.status) == ("h1", "1.2", "ok")
    assert (device.first_seen, device.last_seen) == (T0 + 6, T0 + 7)
    assert device.last_payload is not None and device.last_payload["cpu"] == 10.0
    assert device.last_payload["device_id"] == "d1" and device.last_payload["hostname"] == "h1"
    assert await store.latest_sample("nobody") is None


async def test_one_batch_of_many_devices_updates_each(store: Store) -> None:
    """A batch mixing devices (and several samples per device) updates every device's latest row."""
    batch = [sample(f"d{i % 3}", T0 + i, cpu=float(i)) for i in range(9)]
    await store.write_samples(batch, T0 + 50)
    devices = await store.list_devices()
    assert [d.device_id for d in devices] == ["d0", "d1", "d2"]
    assert [d.last_payload["cpu"] if d.last_payload else None for d in devices] == [6.0, 7.0, 8.0]
    assert all(d.last_seen == T0 + 50 for d in devices)


async def test_touch_device_creates_then_keeps_what_is_not_reported(store: Store) -> None:
    """touch_device sets last_seen and what it is given; None leaves the stored value."""
    tags = orjson.dumps(["rack-1"]).decode()
    commands = orjson.dumps(["ping", "shell"]).decode()
    await store.touch_device(
        "d1", T0, hostname="h", agent_version="2.0", platform="linux", agent_tags=tags, commands=commands
    )
    await store.touch_device("d1", T0 + 9, hostname=None, agent_version="2.1")
    device = await store.get_device("d1")
    assert device is not None
    assert (device.first_seen, device.last_seen) == (T0, T0 + 9)
    assert (device.hostname, device.agent_version, device.platform) == ("h", "2.1", "linux")
    assert device.agent_tags == ("rack-1",) and device.commands == ("ping", "shell")
    assert device.online is False and device.hub_id is None and device.last_payload is None


async def test_touch_devices_stores_many_hellos_in_order_in_one_call(store: Store) -> None:
    """A group commit of hellos: each device created or updated, a device's later touch winning
    over its earlier one, unreported fields kept."""
    await store.touch_device("old", T0, hostname="old-host", platform="linux")
    await store.touch_devices(
        [
            ("new-b", T0 + 1, {"hostname": "b", "agent_version": "1.0"}),
            ("old", T0 + 2, {"hostname": None, "agent_version": "2.0"}),
            ("new-a", T0 + 3, {"hostname": "a"}),
            ("new-b", T0 + 4, {"agent_version": "1.1"}),
        ]
    )
    devices = {d.device_id: d for d in await store.list_devices()}
    summary = {
        k: (d.first_seen, d.last_seen, d.hostname, d.agent_version, d.platform) for k, d in devices.items()
    }
    assert summary == {
        "new-a": (T0 + 3, T0 + 3, "a", None, None),
        "new-b": (T0 + 1, T0 + 4, "b", "1.1", None),
        "old": (T0, T0 + 2, "old-host", "2.0", "linux"),
    }
    await store.touch_devices([])


async def test_devices_listed_bytewise(store: Store) -> None:
    """Devices are listed by id in byte order (capitals before lower case), on both backends."""
    for name in ("b", "a", "B", "a.1", "a-2"):
        await store.touch_device(name, T0)
    assert [d.device_id for d in await store.list_devices()] == ["B", "a", "a-2", "a.1", "b"]
    assert await store.get_device("zzz") is None


async def test_rename_and_tags(store: Store) -> None:
    """A display name is set and cleared; tags are deduplicated and sorted; unknown ids give None."""
    await store.touch_device("d1", T0, agent_tags='["from-agent"]')
    named = await store.rename_device("d1", "Front desk")
    assert named is not None and named.name == "Front desk"
    tagged = await store.set_device_tags("d1", ["b", "a", "b"])
    assert tagged is not None and tagged.tags == ("a", "b") and tagged.name == "Front desk"
    assert tagged.all_tags() == ["a", "b", "from-agent"]
    cleared = await store.rename_device("d1", None)
    assert cleared is not None and cleared.name is None and cleared.tags == ("a", "b")
    assert await store.get_device("d1") == cleared
    assert await store.rename_device("nobody", "x") is None
    assert await store.set_device_tags("nobody", ["x"]) is None


async def test_device_tags_are_the_operators_and_the_agents(store: Store) -> None:
    """``device_tags`` (what alert selectors read): every device, with both kinds of tags."""
    assert await store.device_tags() == {}
    await store.touch_device("d1", T0, agent_tags='["from-agent", "a"]')
    await store.touch_device("d2", T0)
    await store.set_device_tags("d1", ["a", "b"])
    await store.set_device_tags("d3-unknown", ["x"])
    assert await store.device_tags() == {"d1": frozenset({"a", "b", "from-agent"}), "d2": frozenset()}
    assert {
        d.device_id: frozenset(d.all_tags()) for d in await store.list_devices()
    } == await store.device_tags()


async def test_delete_device_removes_its_rows_and_counts_them(store: Store) -> None:
    """Samples, presence events, commands and rollups of the device go; other devices stay."""
    await store.write_samples([sample("d1", T0 + i) for i in range(4)], T0)
    await store.write_samples([sample("d2", T0)], T0)
    await store.set_presence("d1", True, "connected", "ws", T0)
    await store.set_presence("d1", False, "disconnected", "ws", T0 + 1)
    await store.create_command("d1", "ping", None, T0)
    await store.roll_up()
    removed = await store.delete_device("d1")
    assert removed is not None
    assert removed.to_json() == {
        "device_id": "d1",
        "samples": 4,
        "presence_events": 2,
        "commands": 1,
        "credential": False,
    }
    assert await store.get_device("d1") is None
    assert await store.query_samples("d1", None, None, 10) == []
    assert await store.query_buckets("d1", None, None, 60.0, 10) == []
    assert await store.presence_events("d1", 10) == [] and await store.list_commands("d1", 10) == []
    assert [d.device_id for d in await store.list_devices()] == ["d2"]
    assert len(await store.query_samples("d2", None, None, 10)) == 1


async def test_delete_unknown_device_keeps_commands_queued_for_it(store: Store) -> None:
    """No device row and no credential: None, and commands queued for that id are not deleted."""
    await store.create_command("future", "ping", None, T0)
    assert await store.delete_device("future") is None
    assert len(await store.list_commands("future", 10)) == 1
