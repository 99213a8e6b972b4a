"""The release tables of the store (DESIGN §12), on every backend the ``store`` fixture gives."""

from __future__ import annotations

import pytest

from monitor_server.store import Store
from monitor_server.store.release_records import Release, ReleaseDevice, Rollout
from protocol.errors import Conflict

V1 = Release("0.2.0", "a" * 64, "c2ln", 5, {"version": "0.2.0", "wheels": []}, 10.0, "alice")
V2 = Release("0.3.0", "b" * 64, "c2lo", 3, {"version": "0.3.0"}, 20.0, "cli")


async def test_releases_round_trip(store: Store) -> None:
    """A release and its bytes come back as stored; a version is published once."""
    await store.create_release(V1, b"\x00zip\xff")
    await store.create_release(V2, b"abc")
    assert await store.get_release("0.2.0") == V1
    assert await store.list_releases() == [V1, V2]
    assert await store.release_bundle("0.2.0") == b"\x00zip\xff"
    assert await store.release_bundle("9.9") is None
    assert await store.get_release("9.9") is None
    with pytest.raises(Conflict):
        await store.create_release(V1, b"other")
    assert await store.release_bundle("0.2.0") == b"\x00zip\xff"


async def test_rollouts_replace_per_version(store: Store) -> None:
    """One rollout per version: a second one replaces the first."""
    await store.create_release(V1, b"x")
    first = Rollout("0.2.0", {"percent": 10}, False, False, 30.0)
    await store.save_rollout(first)
    assert await store.get_rollout("0.2.0") == first
    second = Rollout("0.2.0", {"devices": ["d1", "d2"]}, True, True, 40.0)
    await store.save_rollout(second)
    assert await store.list_rollouts() == [second]
    third = Rollout("0.2.0", {"percent": 5}, False, False, 50.0)
    await store.save_rollout(third)
    assert not await store.pause_rollout("0.2.0", 40.0)  # the rollout judged was replaced since
    assert not (await store.get_rollout("0.2.0")).paused  # type: ignore[union-attr]
    assert await store.pause_rollout("0.2.0", 50.0)
    assert not await store.pause_rollout("0.2.0", 50.0)
    assert (await store.get_rollout("0.2.0")).paused  # type: ignore[union-attr]
    assert await store.get_rollout("0.3.0") is None


async def test_device_states_upsert(store: Store) -> None:
    """Each (version, device) keeps its latest state and reason, listed by device id."""
    await store.set_release_device(ReleaseDevice("0.2.0", "d2", "offered", "", 1.0))
    await store.set_release_device(ReleaseDevice("0.2.0", "d1", "offered", "", 1.0))
    await store.set_release_device(ReleaseDevice("0.2.0", "d2", "failed", "bad_signature: no", 2.0))
    await store.set_release_device(ReleaseDevice("0.3.0", "d1", "installed", "", 3.0))
    assert await store.list_release_devices("0.2.0") == [
        ReleaseDevice("0.2.0", "d1", "offered", "", 1.0),
        ReleaseDevice("0.2.0", "d2", "failed", "bad_signature: no", 2.0),
    ]
    assert await store.list_release_devices("9") == []
    assert await store.get_release_device("0.2.0", "d2") == ReleaseDevice(
        "0.2.0", "d2", "failed", "bad_signature: no", 2.0
    )
    assert await store.get_release_device("0.2.0", "d3") is None
