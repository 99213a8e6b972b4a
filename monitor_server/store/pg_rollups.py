"""History tiers on PostgreSQL (DESIGN §14): the SQL that folds samples into them and reads buckets.

The same arithmetic as ``sqlite.py``: per metric a count, a sum, a minimum and a maximum, so an
average over any span of tier rows is exact. Every string here is built from module constants.
"""

# ruff: noqa: S608 (SQL assembled from module constants and "$n" placeholders only)
from __future__ import annotations

import math
from typing import Any

from monitor_server.store.records import ROLLUP_FIELDS, TIERS, Sample, Tier

_TYPED_FIELDS = frozenset({"cpu", "ram", "disk"})
_BOUND = 1 << 62  # beyond any epoch second: stands for an open end of a bigint range


def _value(field: str) -> str:
    """A metric of a sample row whose JSON is ``x``: a typed column, or a number from ``extra``."""
    if field in _TYPED_FIELDS:
        return field
    return f"CASE WHEN jsonb_typeof(x -> '{field}') = 'number' THEN (x ->> '{field}')::float8 END"


def _metrics(where: str) -> str:
    """The samples matching ``where`` with every rollup metric as a column (``OFFSET 0`` keeps the
    planner from inlining it, so each row's JSON is parsed once, not once per metric)."""
    columns = ", ".join(f"{_value(m)} AS {m}" for m in ROLLUP_FIELDS)
    return (
        f"(SELECT device_id, ts, uptime_sec, {columns} FROM"
        f" (SELECT *, extra::jsonb AS x FROM samples WHERE {where} OFFSET 0) j) s"
    )


# Per metric: how many samples had it, their sum, minimum and maximum (a "part" of a bucket).
_PARTS = "".join(
    f", COUNT({m}) AS {m}_n, COALESCE(SUM({m}), 0) AS {m}_sum, MIN({m}) AS {m}_min, MAX({m}) AS {m}_max"
    for m in ROLLUP_FIELDS
)
_PART_COLUMNS = "".join(f", {m}_n, {m}_sum, {m}_min, {m}_max" for m in ROLLUP_FIELDS)
_MERGED_PARTS = "".join(f", SUM({m}_n), SUM({m}_sum), MIN({m}_min), MAX({m}_max)" for m in ROLLUP_FIELDS)
# Parts of one bucket merged: the newest sample's time, how many samples, the highest uptime, and
# per metric the average (NULL when no sample had it), minimum and maximum.
_BUCKET_AGGREGATES = "MAX(last_ts), SUM(n)::bigint, MAX(uptime_sec)" + "".join(
    f", SUM({m}_sum) / NULLIF(SUM({m}_n), 0)::float8, MIN({m}_min), MAX({m}_max)" for m in ROLLUP_FIELDS
)


def _start(width: int) -> str:
    return f"(trunc(ts / {width}) * {width})::bigint"


def _fold(tier: Tier) -> str:
    """Fold ``batch`` (per finest-tier row) into ``tier``: new rows, or merged into existing ones."""
    merged = ["n = t.n + excluded.n"]
    merged += ["last_ts = GREATEST(t.last_ts, excluded.last_ts)"]
    merged += ["uptime_sec = GREATEST(t.uptime_sec, excluded.uptime_sec)"]
    for m in ROLLUP_FIELDS:
        merged += [f"{m}_n = t.{m}_n + excluded.{m}_n", f"{m}_sum = t.{m}_sum + excluded.{m}_sum"]
        merged += [f"{m}_min = LEAST(t.{m}_min, excluded.{m}_min)"]
        merged += [f"{m}_max = GREATEST(t.{m}_max, excluded.{m}_max)"]
    return (
        f"fold_{tier.name} AS (INSERT INTO {tier.table} AS t"
        f" (device_id, start, n, last_ts, uptime_sec{_PART_COLUMNS})"
        f" SELECT device_id, start / {tier.width} * {tier.width}, SUM(n), MAX(last_ts), MAX(uptime_sec)"
        f"{_MERGED_PARTS} FROM batch GROUP BY 1, 2"
        f" ON CONFLICT (device_id, start) DO UPDATE SET {', '.join(merged)})"
    )


# One statement: the samples with ids in ``($1, $2]`` per device and finest tier row (every
# tier's width is a multiple of it), folded into each tier.
FOLD = (
    f"WITH batch AS (SELECT device_id, {_start(TIERS[0].width)} AS start, COUNT(*) AS n,"
    f" MAX(ts) AS last_ts, MAX(uptime_sec) AS uptime_sec{_PARTS}"
    f" FROM {_metrics('id > $1 AND id <= $2')} GROUP BY 1, 2), "
    + ", ".join(_fold(tier) for tier in TIERS)
    + " SELECT 1"
)

# The first ``$2`` samples above the watermark ``$1``: how many, and the highest id.
NEXT_BATCH = "SELECT COUNT(*), MAX(id) FROM (SELECT id FROM samples WHERE id > $1 ORDER BY id LIMIT $2) b"


def _tier_buckets(tier: Tier) -> str:
    """Buckets of ``$1`` seconds (a multiple of the width) from the tier's rows starting in
    ``[$3, $4]`` and the samples not folded yet in those rows' spans, newest ``$5`` first."""
    start = _start(tier.width)
    unfolded = f"id > (SELECT watermark FROM rollup_state) AND device_id = $2 AND {start} BETWEEN $3 AND $4"
    return (
        f"SELECT {_BUCKET_AGGREGATES} FROM ("
        f" SELECT start, n, last_ts, uptime_sec{_PART_COLUMNS} FROM {tier.table}"
        "  WHERE device_id = $2 AND start BETWEEN $3::bigint AND $4::bigint"
        f" UNION ALL SELECT {start}, COUNT(*), MAX(ts), MAX(uptime_sec){_PARTS}"
        f"  FROM {_metrics(unfolded)} GROUP BY 1"
        ") u GROUP BY trunc(start / $1::float8) ORDER BY 1 DESC LIMIT $5"
    )


TIER_BUCKETS = {tier.name: _tier_buckets(tier) for tier in TIERS}
RAW_BUCKETS = (
    f"SELECT {_BUCKET_AGGREGATES} FROM ("
    " SELECT trunc(ts / $1::float8) AS bucket, COUNT(*) AS n, MAX(ts) AS last_ts,"
    f" MAX(uptime_sec) AS uptime_sec{_PARTS}"
    f"  FROM {_metrics('device_id = $2 AND ts >= $3 AND ts <= $4')} GROUP BY bucket"
    ") r GROUP BY bucket ORDER BY 1 DESC LIMIT $5"
)


def start_range(lowest: float, until: float | None) -> tuple[int, int]:
    """Whole-second bounds of tier row starts in ``[lowest, until]`` (open ends far away)."""
    low = -_BOUND if math.isinf(lowest) else math.ceil(lowest)
    high = _BOUND if until is None else math.floor(until)
    return low, high


def bucket(device_id: str, r: Any) -> Sample:
    """A bucket as a sample: core averages in their columns, the other averages in ``extra``
    beside ``count`` (samples in the bucket) and ``min`` / ``max`` per metric."""
    averages, lows, highs = {}, {}, {}
    for i, m in enumerate(ROLLUP_FIELDS):
        avg, low, high = r[3 + 3 * i], r[4 + 3 * i], r[5 + 3 * i]
        if avg is not None:
            averages[m], lows[m], highs[m] = avg, low, high
    core = [averages.pop(m, None) for m in ("cpu", "ram", "disk")]
    extra: dict[str, Any] = {**averages, "count": r[1], "min": lows, "max": highs}
    return Sample(device_id, r[0], core[0], core[1], core[2], r[2], None, extra)
