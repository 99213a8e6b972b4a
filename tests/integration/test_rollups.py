"""History tiers (DESIGN §14): one-minute and one-hour rollups on a real hub and its SQLite file.

Samples over two simulated days go in through the store (and a few through ``POST /ingest``);
``GET /devices/{id}/metrics?step=`` must give exactly the averages, minima and maxima computed here.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor_server.retention import retention_pass
from monitor_server.store import Sample, Store
from monitor_server.store.schema import MIGRATIONS, TIER_FIELDS_V4
from protocol import to_epoch
from tests.conftest import HubFactory
from tests.hubs import RunningHub

DAY = 86400
HOUR = 3600


def _day_start() -> int:
    """Midnight three days ago: recent enough that raw retention (7 days) keeps every sample."""
    return int(time.time()) // DAY * DAY - 3 * DAY


def _samples(device: str, start: float, count: int, every: float, seed: int) -> list[Sample]:
    """Irregular samples (jittered times, some without load or memory) with varied values."""
    draw = random.Random(seed)
    made = []
    for i in range(count):
        extra: dict[str, Any] = {"net_rx_bps": draw.uniform(0, 1e6)}
        if i % 7:
            extra["load_1"] = round(draw.uniform(0, 8), 2)
        if i % 5:
            extra["mem_used"] = draw.randrange(1 << 30, 8 << 30)
        ts = start + i * every + draw.uniform(0, every / 2)
        made.append(
            Sample(device, ts, draw.uniform(0, 100), draw.uniform(10, 90), 50.0, 1000 + i, "ok", extra)
        )
    return made


def _value(sample: Sample, field: str) -> float | None:
    if field in ("cpu", "ram", "disk"):
        value: float | None = getattr(sample, field)
        return value
    found = sample.extra.get(field)
    return None if found is None else float(found)


def _expected(samples: list[Sample], step: int, field: str) -> dict[int, tuple[float, float, float]]:
    """Per bucket start: (average, minimum, maximum) of ``field`` over the samples that have it."""
    groups: dict[int, list[float]] = defaultdict(list)
    for s in samples:
        value = _value(s, field)
        if value is not None:
            groups[int(s.ts // step * step)].append(value)
    return {start: (sum(v) / len(v), min(v), max(v)) for start, v in sorted(groups.items())}


def _answered(body: dict[str, Any], field: str) -> dict[int, tuple[float, float, float]]:
    step = body["step"]
    found = {}
    for bucket in body["samples"]:
        start = int(to_epoch(bucket["ts"]) // step * step)
        if bucket.get(field) is not None:
            found[start] = (bucket[field], bucket["min"][field], bucket["max"][field])
    return found


def _assert_same(
    got: dict[int, tuple[float, float, float]], want: dict[int, tuple[float, float, float]]
) -> None:
    assert sorted(got) == sorted(want)
    for start, (avg, low, high) in want.items():
        assert got[start] == pytest.approx((avg, low, high), rel=1e-9), start


def _store(hub: RunningHub) -> Store:
    return hub.hub.store


async def _metrics(api: httpx.AsyncClient, device: str, **params: Any) -> dict[str, Any]:
    answer = await api.get(f"/devices/{device}/metrics", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_hour_step_matches_averages_min_and_max_over_two_days(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Two days of samples every ~40 s, folded in two passes with late arrivals between them."""
    day0 = _day_start()
    samples = _samples("r1", day0, 2 * DAY // 40, 40.0, seed=1)
    store = _store(hub)
    late = samples[::50]  # stored after the first fold: merged into hour rows that already exist
    early = [s for s in samples if s not in late]
    await store.write_samples(early, time.time())
    assert await store.roll_up(batch=1000) == len(early)  # several transactions
    await store.write_samples(late, time.time())
    # a few through the REST API as an agent would send them, with explicit times
    posted = _samples("r1", day0 + 2 * DAY - HOUR, 3, 7.0, seed=2)
    for s in posted:
        body = {"device_id": "r1", "ts": s.ts, "cpu": s.cpu, "ram": s.ram, "disk": s.disk, **s.extra}
        assert (await api.post("/ingest", json=body)).status_code == 200
    samples += posted
    assert await store.roll_up() == len(late) + len(posted)
    assert await store.roll_up() == 0  # nothing new: the watermark moved

    body = await _metrics(api, "r1", step=HOUR, since=day0, until=day0 + 2 * DAY - 1)
    assert body["tier"] == "hour" and body["step"] == HOUR
    assert len(body["samples"]) == 48 and body["truncated"] is False
    for field in ("cpu", "ram", "load_1", "mem_used", "net_rx_bps"):
        _assert_same(_answered(body, field), _expected(samples, HOUR, field))
    counts = [b["count"] for b in body["samples"]]
    assert sum(counts) == len(samples)
    times = [to_epoch(b["ts"]) for b in body["samples"]]
    assert times == sorted(times)  # oldest first
    assert body["samples"][-1]["uptime_sec"] == max(s.uptime_sec or 0 for s in samples)

    # a day per bucket, from the six-hour tier
    daily = await _metrics(api, "r1", step=DAY, since=day0)
    assert daily["tier"] == "6h" and len(daily["samples"]) == 2
    _assert_same(_answered(daily, "cpu"), _expected(samples, DAY, "cpu"))


async def test_samples_not_folded_yet_are_in_the_answer(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """The tiers plus the samples stored since the last fold: a chart is current between folds."""
    day0 = _day_start()
    store = _store(hub)
    first = _samples("r2", day0, 200, 30.0, seed=3)
    await store.write_samples(first, time.time())
    await store.roll_up()
    # same hours (and one minute already folded) as well as new ones, not folded
    more = _samples("r2", first[-1].ts // 60 * 60, 150, 20.0, seed=4)
    await store.write_samples(more, time.time())
    everything = first + more
    for step in (60, HOUR):
        body = await _metrics(api, "r2", step=step, since=day0)
        assert sum(b["count"] for b in body["samples"]) == len(everything)
        _assert_same(_answered(body, "cpu"), _expected(everything, step, "cpu"))


async def test_minute_tier_serves_steps_from_60_to_3599(hub: RunningHub, api: httpx.AsyncClient) -> None:
    day0 = _day_start()
    samples = _samples("r3", day0, 3 * HOUR // 10, 10.0, seed=5)
    store = _store(hub)
    await store.write_samples(samples, time.time())
    await store.roll_up()
    for asked, answered in ((60, 60), (90, 60), (300, 300), (3599, 3540)):
        body = await _metrics(api, "r3", step=asked, since=day0, limit=10_000)
        assert (body["tier"], body["step"]) == ("minute", answered)
        _assert_same(_answered(body, "cpu"), _expected(samples, answered, "cpu"))
        _assert_same(_answered(body, "load_1"), _expected(samples, answered, "load_1"))
    raw = await _metrics(api, "r3", step=59, since=day0, limit=10_000)
    assert (raw["tier"], raw["step"]) == ("raw", 59)
    _assert_same(_answered(raw, "cpu"), _expected(samples, 59, "cpu"))
    eight_hours = await _metrics(api, "r3", step=365 * DAY / 1000)
    assert (eight_hours["tier"], eight_hours["step"]) == ("6h", 6 * HOUR)
    year = await _metrics(api, "r3", step=12 * HOUR)  # what a one-year chart asks (730 buckets)
    assert (year["tier"], year["step"]) == ("6h", 12 * HOUR)
    _assert_same(_answered(year, "cpu"), _expected(samples, 12 * HOUR, "cpu"))


async def test_limit_on_a_tier_pages_back_over_whole_buckets(hub: RunningHub, api: httpx.AsyncClient) -> None:
    day0 = _day_start()
    samples = _samples("r4", day0, 2 * DAY // 60, 60.0, seed=6)
    await _store(hub).write_samples(samples, time.time())
    await _store(hub).roll_up()
    params: dict[str, Any] = {"step": HOUR, "since": day0, "limit": 20}
    pages = [await _metrics(api, "r4", **params)]
    while pages[-1]["truncated"]:
        params["until"] = pages[-1]["next_until"]
        pages.append(await _metrics(api, "r4", **params))
        assert len(pages) < 10
    assert [len(p["samples"]) for p in pages] == [20, 20, 8]
    starts = [int(to_epoch(b["ts"]) // HOUR) for p in reversed(pages) for b in p["samples"]]
    assert starts == sorted(set(starts)) and len(starts) == 48


async def test_retention_keeps_each_tier_its_own_age(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Raw 7 days, minutes 90 days, hours 2 years; a sample is never deleted before it is folded."""
    now = time.time()
    store = _store(hub)
    ages = {"d10": 10, "d100": 100, "d800": 800}
    for name, days in ages.items():
        await store.write_samples(_samples(f"r5-{name}", now - days * DAY, 30, 10.0, seed=days), now)
    # not folded yet: raw retention leaves them alone
    assert await store.delete_samples_before(now - 7 * DAY) == 0
    await retention_pass(store, 7.0, now)  # folds, then deletes

    async def buckets(name: str, **params: Any) -> int:
        since = now - ages[name] * DAY - DAY
        body = await _metrics(api, f"r5-{name}", since=since, **params)
        return sum(b.get("count", 1) for b in body["samples"])

    assert [await buckets(n) for n in ages] == [0, 0, 0]  # raw: all older than 7 days
    assert [await buckets(n, step=60) for n in ages] == [30, 0, 0]  # minutes: 90 days
    assert [await buckets(n, step=HOUR) for n in ages] == [30, 30, 0]  # hours: 2 years
    assert [await buckets(n, step=6 * HOUR) for n in ages] == [30, 30, 30]  # six hours: 5 years


async def test_removed_device_leaves_no_rollups_and_its_new_samples_are_folded(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """Removing the device whose samples were the last stored must not hide the next ones."""
    day0 = _day_start()
    store = _store(hub)
    await store.write_samples(_samples("r6-other", day0, 10, 10.0, seed=7), time.time())
    await store.write_samples(_samples("r6", day0, 10, 10.0, seed=8), time.time())
    await store.roll_up()
    assert (await api.delete("/devices/r6")).status_code == 200
    again = _samples("r6", day0 + HOUR, 4, 10.0, seed=9)
    await store.write_samples(again, time.time())
    assert await store.roll_up() == 4
    body = await _metrics(api, "r6", step=HOUR, since=day0)
    assert [b["count"] for b in body["samples"]] == [4]
    assert math.isclose(body["samples"][0]["cpu"], sum(s.cpu or 0 for s in again) / 4)


async def test_a_database_from_before_the_tiers_folds_its_stored_samples(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    """Schema 3 with samples in it: the hub migrates to 4 and the first fold takes them all."""
    db = tmp_path / "hub0" / "monitor.db"  # where the factory's first hub keeps its database
    db.parent.mkdir(parents=True)
    day0 = _day_start()
    old = _samples("r7", day0, 120, 60.0, seed=10)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for number, script in enumerate(MIGRATIONS[:3], start=1):
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
        conn.executemany(
            "INSERT INTO samples (device_id, ts, cpu, ram, disk, uptime_sec, status, extra)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (s.device_id, s.ts, s.cpu, s.ram, s.disk, s.uptime_sec, s.status, json.dumps(s.extra))
                for s in old
            ],
        )
        conn.commit()
    hub = await hub_factory()
    await _store(hub).roll_up()  # the hub's first retention pass may have folded them already
    with contextlib.closing(sqlite3.connect(db)) as conn:
        minutes = conn.execute("SELECT SUM(n) FROM rollup_minute WHERE device_id = 'r7'").fetchone()
        hours = conn.execute("SELECT SUM(n) FROM rollup_hour WHERE device_id = 'r7'").fetchone()
    assert minutes == hours == (len(old),)
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        body = await _metrics(api, "r7", step=HOUR, since=day0)
    assert body["tier"] == "hour"
    for field in ("cpu", "load_1", "mem_used"):
        _assert_same(_answered(body, field), _expected(old, HOUR, field))


async def test_the_six_hour_tier_is_filled_from_the_hour_tier_on_upgrade(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    """Schema 5 with folded hours (and their samples gone): migration 6 builds six-hour rows from them."""
    db = tmp_path / "hub0" / "monitor.db"
    db.parent.mkdir(parents=True)
    day0 = _day_start()
    fields = TIER_FIELDS_V4
    columns = ", ".join(f"{m}_n, {m}_sum, {m}_min, {m}_max" for m in fields)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for number, script in enumerate(MIGRATIONS[:5], start=1):
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
        rows = []
        for hour in range(12):  # two six-hour spans; cpu averages 10 * hour over 2 samples an hour
            metrics: list[float | int | None] = []
            for m in fields:
                metrics += [2, 20.0 * hour, 5.0 * hour, 15.0 * hour] if m == "cpu" else [0, 0.0, None, None]
            rows.append(("old-1", day0 + hour * HOUR, 2, day0 + hour * HOUR + 60, 100 + hour, *metrics))
        marks = ", ".join("?" * (5 + 4 * len(fields)))
        conn.executemany(
            f"INSERT INTO rollup_hour (device_id, start, n, last_ts, uptime_sec, {columns}) VALUES ({marks})",  # noqa: S608 - schema names
            rows,
        )
        conn.commit()
    hub = await hub_factory()
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        body = await _metrics(api, "old-1", step=6 * HOUR, since=day0)
    assert body["tier"] == "6h"
    assert [b["count"] for b in body["samples"]] == [12, 12]
    assert [b["cpu"] for b in body["samples"]] == [25.0, 85.0]  # (0+...+5)*10/6, (6+...+11)*10/6
    assert [(b["min"]["cpu"], b["max"]["cpu"]) for b in body["samples"]] == [(0.0, 75.0), (30.0, 165.0)]
