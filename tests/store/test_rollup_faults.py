"""History tiers under faults, on both backends: what a refused write or a removed device leaves."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from monitor_server.store import Sample, Store
from monitor_server.store import sqlite as sqlite_store
from monitor_server.store.sqlite import SQLiteStore
from tests.store.test_rollups import DAY0, HOUR, answered, assert_same, expected

STEPS = (60.0, float(HOUR), 21600.0)
METRICS = ("cpu", "ram", "disk", "load_1", "mem_used", "procs", "net_rx_bps", "temp_max")


def value(draw: random.Random) -> Any:
    """A metric as agents and scripts send them: mostly floats, some ints, or absent."""
    kind = draw.random()
    if kind < 0.6:
        return round(draw.uniform(-5, 1e4), 3)
    if kind < 0.85:
        return draw.randrange(0, 1 << 40)
    return None


def batches(seed: int, devices: int = 7) -> list[list[Sample]]:
    """Interleaved devices over twenty minutes, late samples; one batch replays an earlier one,
    one mixes stored and new samples (the store ignores the duplicates)."""
    draw = random.Random(seed)
    made: list[Sample] = []
    for i in range(devices * 60):
        device = f"f{i % devices}"
        ts = DAY0 + (i // devices) * 20.0 + draw.uniform(0, 19)  # three a minute, or so
        extra = {m: value(draw) for m in METRICS[3:]}
        extra["procs"] = draw.choice([True, False, extra["procs"]])  # JSON true: 1 to SQLite, not to PG
        extra = {k: v for k, v in extra.items() if v is not None} | {"hostname": device}
        core = [value(draw) for _ in range(3)]
        cpu, ram, disk = (float(v) if v is not None else None for v in core)
        made.append(Sample(device, ts, cpu, ram, disk, draw.choice([None, 10 + i]), "ok", extra))
    late = made[5::11]
    ordered = [s for s in made if s not in late] + late
    cut = [draw.randrange(len(ordered)) for _ in range(12)]
    out = [ordered[a:b] for a, b in zip([0, *sorted(cut)], [*sorted(cut), len(ordered)], strict=True)]
    out = [b for b in out if b]
    return [*out[:4], out[1], out[2][:3] + out[4], *out[4:]]


async def assert_folded_exactly(store: Store, stored: list[Sample]) -> None:
    await store.roll_up()
    await assert_answered_exactly(store, stored)


async def assert_answered_exactly(store: Store, stored: list[Sample]) -> None:
    """Every tier's buckets hold each sample once, whatever the roll-up has folded so far."""
    unique = {(s.device_id, s.ts): s for s in stored}
    for device in sorted({d for d, _ in unique}):
        mine = [s for (d, _), s in unique.items() if d == device]
        for step in STEPS:
            got = await store.query_buckets(device, None, None, step, 10_000)
            assert sum(b.extra["count"] for b in got) == len(mine), (device, step)
            assert_same(answered(got, step, "cpu"), expected(mine, step, "cpu"))


async def test_a_device_removed_before_its_samples_are_folded_is_gone_from_every_tier(store: Store) -> None:
    written = batches(5)
    for n, batch in enumerate(written):
        await store.write_samples(batch, DAY0)
        if n == 3:
            assert await store.delete_device("f3") is not None
    await assert_folded_exactly(
        store, [s for n, b in enumerate(written) for s in b if s.device_id != "f3" or n > 3]
    )


async def test_a_refused_write_folds_nothing_of_its_batch(store: Store) -> None:
    """A batch the store refuses rolls back (its stored duplicates included): the tiers hold
    every other sample once."""
    written = batches(6)
    for n, batch in enumerate(written):
        await store.write_samples(batch, DAY0)
        if n == 3:
            refused = [*batch[:2], Sample("f1", DAY0 + 1, 1.0, None, None, None, "ok", {}), batch[0]]
            refused[2].uptime_sec = 1 << 64
            with pytest.raises(Exception):  # noqa: B017, PT011 (either backend's own error)
                await store.write_samples(refused, DAY0)
    await assert_folded_exactly(store, [s for b in written for s in b])


async def test_a_pass_cut_short_between_chunks_is_exact_meanwhile_and_finished_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite folds a pass into the tiers a range of devices per transaction. One refused after
    three devices (a trigger in the database) leaves those folded and the rest not: charts stay
    exact meanwhile, and the next pass, by a store opened again (its held sums gone), folds the
    rest once."""
    monkeypatch.setattr(sqlite_store, "FOLD_CHUNK", 2)  # a device a chunk: each has many minutes
    path = tmp_path / "hub.db"
    store = SQLiteStore(path)
    await store.open()
    written = [s for b in batches(7) for s in b]
    try:
        await store.write_samples(written, DAY0)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute(
                "CREATE TRIGGER cut BEFORE UPDATE OF pass_device ON rollup_state"
                " WHEN NEW.pass_device >= 'f3' BEGIN SELECT RAISE(ABORT, 'cut short'); END"
            )
            conn.commit()
        with pytest.raises(sqlite3.IntegrityError, match="cut short"):
            await store.roll_up()
        await assert_answered_exactly(store, written)
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT pass_device FROM rollup_state").fetchone() == ("f2",)
        assert conn.execute("SELECT COUNT(DISTINCT device_id) FROM rollup_minute").fetchone() == (3,)
        conn.execute("DROP TRIGGER cut")
        conn.commit()
    store = SQLiteStore(path)
    await store.open()
    try:
        await assert_folded_exactly(store, written)
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT pass_high, pass_device FROM rollup_state").fetchone() == (None, None)
        assert conn.execute("SELECT COUNT(DISTINCT device_id) FROM rollup_minute").fetchone() == (7,)
