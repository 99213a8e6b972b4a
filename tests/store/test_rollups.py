"""History tiers (DESIGN §14) in the store: buckets equal what the test computes, on both backends."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import pytest

from monitor_server.store import Sample, Store
from monitor_server.store.records import HOUR_TIER, MINUTE_TIER, SIX_HOUR_TIER

DAY = 86400
HOUR = 3600
DAY0 = 1_800_000_000 // DAY * DAY  # a midnight, so hour and day buckets line up with the tiers
Stats = dict[int, tuple[float, float, float]]


def irregular(device: str, start: float, count: int, every: float, seed: int) -> list[Sample]:
    """Jittered times; some samples without load or memory; varied values."""
    draw = random.Random(seed)
    made = []
    for i in range(count):
        extra: dict[str, Any] = {"net_rx_bps": draw.uniform(0, 1e6), "note": "not a metric"}
        if i % 7:
            extra["load_1"] = round(draw.uniform(0, 8), 2)
        if i % 5:
            extra["mem_used"] = draw.randrange(1 << 30, 8 << 30)
        ts = start + i * every + draw.uniform(0, every / 2)
        made.append(
            Sample(device, ts, draw.uniform(0, 100), draw.uniform(10, 90), 50.0, 1000 + i, "ok", extra)
        )
    return made


def expected(samples: list[Sample], step: float, field: str) -> Stats:
    """Per bucket start: (average, minimum, maximum) of ``field`` over the samples that have it."""
    groups: dict[int, list[float]] = defaultdict(list)
    for s in samples:
        value = getattr(s, field) if field in ("cpu", "ram", "disk") else s.extra.get(field)
        if value is not None:
            groups[int(s.ts // step * step)].append(float(value))
    return {start: (sum(v) / len(v), min(v), max(v)) for start, v in sorted(groups.items())}


def answered(buckets: list[Sample], step: float, field: str) -> Stats:
    found = {}
    for b in buckets:
        average = getattr(b, field) if field in ("cpu", "ram", "disk") else b.extra.get(field)
        if average is not None:
            found[int(b.ts // step * step)] = (average, b.extra["min"][field], b.extra["max"][field])
    return found


def assert_same(got: Stats, want: Stats) -> None:
    assert sorted(got) == sorted(want)
    for start, stats in want.items():
        assert got[start] == pytest.approx(stats, rel=1e-9), start


async def test_raw_buckets_below_a_minute(store: Store) -> None:
    """Steps under a minute aggregate raw samples: averages, min, max, count and newest time."""
    samples = irregular("d1", DAY0, 300, 3.0, seed=1)
    await store.write_samples(samples, DAY0)
    buckets = await store.query_buckets("d1", None, None, 30.0, 1000)
    for field in ("cpu", "load_1", "mem_used", "net_rx_bps"):
        assert_same(answered(buckets, 30.0, field), expected(samples, 30.0, field))
    assert sum(b.extra["count"] for b in buckets) == len(samples)
    assert [b.ts for b in buckets] == sorted(b.ts for b in buckets)
    assert buckets[-1].ts == samples[-1].ts and buckets[-1].uptime_sec == samples[-1].uptime_sec
    assert "note" not in buckets[0].extra and buckets[0].status is None


async def test_buckets_respect_since_until_and_keep_the_newest(store: Store) -> None:
    """since/until bound the samples; limit keeps the newest buckets, oldest first."""
    samples = irregular("d1", DAY0, 120, 5.0, seed=2)
    await store.write_samples(samples, DAY0)
    inside = [s for s in samples if DAY0 + 100 <= s.ts <= DAY0 + 400]
    window = await store.query_buckets("d1", DAY0 + 100, DAY0 + 400, 20.0, 1000)
    assert sum(b.extra["count"] for b in window) == len(inside)
    assert_same(answered(window, 20.0, "cpu"), expected(inside, 20.0, "cpu"))
    newest = await store.query_buckets("d1", DAY0 + 100, DAY0 + 400, 20.0, 3)
    assert newest == window[-3:]


async def test_tiers_after_roll_up_match_two_days_with_late_arrivals(store: Store) -> None:
    """Folded in several passes, with late samples merged into rows that exist: exact statistics."""
    samples = irregular("d1", DAY0, 2 * DAY // 40, 40.0, seed=3)
    late = samples[::50]
    early = [s for s in samples if s not in late]
    await store.write_samples(early, DAY0)
    assert await store.roll_up(batch=1000) == len(early)  # several transactions
    await store.write_samples(late, DAY0)
    assert await store.roll_up() == len(late)
    assert await store.roll_up() == 0  # nothing new: the watermark moved
    for step, tier in ((60.0, MINUTE_TIER), (float(HOUR), HOUR_TIER), (float(DAY), SIX_HOUR_TIER)):
        buckets = await store.query_buckets("d1", DAY0, DAY0 + 2 * DAY - 1, step, 10_000)
        assert sum(b.extra["count"] for b in buckets) == len(samples), tier.name
        for field in ("cpu", "ram", "load_1", "mem_used", "net_rx_bps"):
            assert_same(answered(buckets, step, field), expected(samples, step, field))
    hours = await store.query_buckets("d1", DAY0, None, float(HOUR), 10_000)
    assert len(hours) == 48 and hours[-1].uptime_sec == max(s.uptime_sec or 0 for s in samples)


async def test_many_devices_one_sample_each_per_batch_and_two_passes_at_once(store: Store) -> None:
    """120 devices in turn (a batch of 50 holds one sample per device), folded by two calls at once:
    every sample counted once, in every tier."""
    per_device = {f"d{n:03d}": irregular(f"d{n:03d}", DAY0, 6, 13.0, seed=n) for n in range(120)}
    interleaved = [s for row in zip(*per_device.values(), strict=True) for s in row]
    await store.write_samples(interleaved, DAY0)
    assert sum(await asyncio.gather(store.roll_up(batch=50), store.roll_up(batch=50))) == len(interleaved)
    assert await store.roll_up(batch=50) == 0
    for device, samples in list(per_device.items())[::17]:
        for step in (60.0, float(HOUR)):
            buckets = await store.query_buckets(device, DAY0, None, step, 10_000)
            assert sum(b.extra["count"] for b in buckets) == len(samples), (device, step)
            assert_same(answered(buckets, step, "cpu"), expected(samples, step, "cpu"))
            assert_same(answered(buckets, step, "load_1"), expected(samples, step, "load_1"))


async def test_step_is_a_whole_number_of_tier_rows(store: Store) -> None:
    """A 90 s step is served as 60 s minute rows; 3,599 s as 59 minutes."""
    samples = irregular("d1", DAY0, 3 * HOUR // 10, 10.0, seed=4)
    await store.write_samples(samples, DAY0)
    await store.roll_up()
    for asked, used in ((90.0, 60.0), (300.0, 300.0), (3599.0, 3540.0)):
        buckets = await store.query_buckets("d1", DAY0, None, asked, 10_000)
        assert_same(answered(buckets, used, "cpu"), expected(samples, used, "cpu"))


async def test_samples_not_folded_yet_are_in_the_answer(store: Store) -> None:
    """Tier rows plus the samples stored since the last fold, even inside a folded minute."""
    first = irregular("d1", DAY0, 200, 30.0, seed=5)
    await store.write_samples(first, DAY0)
    await store.roll_up()
    more = irregular("d1", first[-1].ts // 60 * 60, 150, 20.0, seed=6)
    await store.write_samples(more, DAY0)
    everything = first + more
    for step in (60.0, float(HOUR)):
        buckets = await store.query_buckets("d1", DAY0, None, step, 10_000)
        assert sum(b.extra["count"] for b in buckets) == len(everything)
        assert_same(answered(buckets, step, "cpu"), expected(everything, step, "cpu"))


async def test_tier_limit_keeps_newest_buckets(store: Store) -> None:
    """limit on a tier: the newest whole buckets, oldest first."""
    samples = irregular("d1", DAY0, 2 * DAY // 60, 60.0, seed=7)
    await store.write_samples(samples, DAY0)
    await store.roll_up()
    page = await store.query_buckets("d1", DAY0, None, float(HOUR), 20)
    starts = [int(b.ts // HOUR * HOUR) for b in page]
    assert starts == [DAY0 + h * HOUR for h in range(28, 48)]


async def test_delete_samples_before_only_deletes_folded_ones(store: Store) -> None:
    """Retention never deletes a raw sample that no tier holds yet."""
    old = irregular("d1", DAY0, 10, 10.0, seed=8)
    await store.write_samples(old, DAY0)
    assert await store.delete_samples_before(DAY0 + DAY) == 0  # nothing folded yet
    await store.roll_up()
    newer = irregular("d1", DAY0 + 200, 5, 10.0, seed=9)
    await store.write_samples(newer, DAY0)
    assert await store.delete_samples_before(DAY0 + DAY) == len(old)
    assert await store.query_samples("d1", None, None, 100) == newer
    assert await store.roll_up() == len(newer)  # the unfolded ones are still folded later
    minutes = await store.query_buckets("d1", None, None, 60.0, 100)
    assert sum(b.extra["count"] for b in minutes) == len(old) + len(newer)


async def test_delete_rollups_before_counts_rows_whose_span_ended(store: Store) -> None:
    """A tier row goes when start + width <= cutoff; the other tiers keep theirs."""
    samples = [Sample("d1", DAY0 + m * 60 + 1, float(m), None, None, None, None, {}) for m in range(5)]
    await store.write_samples(samples, DAY0)
    await store.roll_up()
    assert await store.delete_rollups_before(MINUTE_TIER, DAY0 + 2 * 60 + 59) == 2
    assert await store.delete_rollups_before(MINUTE_TIER, DAY0 + 3 * 60) == 1
    assert await store.delete_rollups_before(HOUR_TIER, DAY0 + HOUR - 1) == 0
    await store.delete_samples_before(DAY0 + DAY)
    minutes = await store.query_buckets("d1", None, None, 60.0, 100)
    assert [b.cpu for b in minutes] == [3.0, 4.0]
    hours = await store.query_buckets("d1", None, None, float(HOUR), 100)
    assert [(b.cpu, b.extra["count"]) for b in hours] == [(2.0, 5)]
    assert await store.delete_rollups_before(HOUR_TIER, DAY0 + HOUR) == 1
    assert await store.delete_rollups_before(SIX_HOUR_TIER, DAY0 + 6 * HOUR) == 1
