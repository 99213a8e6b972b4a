"""Scenario 3, ingest: samples/s stored in SQLite through WebSockets, vs raw executemany; REST req/s.

Headline (issue 11): live single-sample ``metrics`` frames from 1,000 agents, which is what a
connected fleet sends (one frame per sample taken), from ``bench/live_load.py`` in its own
process on the load core; in the same hub and run, the same generator sends ``metrics_batch``
frames of 500 from 16 agents, so hub CPU per sample is compared path against path. Rows are
counted in the database file; hub CPU is the hub process's own (its SQLite thread included).

Second WebSocket load: virtual agents on the real agent transport replaying a backlog: up to
500 spooled samples per ``metrics_batch`` frame, a few frames in flight, samples forgotten only
on the hub's ``stored`` frame (sent after their commit). The spool here is endless (a bench-only
``Spool`` that makes samples as they are read), so the rate can be held for the whole window.

REST ``/ingest``: 32 keep-alive clients with one fixed device each, and the same with a device id
never seen before in every request (a new device: presence and ``devices`` rows).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from bench.common import (
    HUB_CORE,
    LOAD_CORE,
    TOKEN,
    HubProcess,
    Scale,
    fleet_for,
    median_of,
    running_fleet,
    running_hub,
    taskset,
    wait_for,
)
from monitor_agent.simulator import SyntheticHost
from monitor_agent.spool import Sample

AGENTS = 16
LIVE_AGENTS = 1000
BATCH = 500
LOAD_LIMIT = 90.0  # load generator CPU % from which a window is marked as bound by it
HUB_LIMIT = 80.0  # hub CPU % (median of windows) from which it is marked as the limit


class EndlessSpool:
    """A spool that always holds another backlog: ``peek`` makes fresh samples, ``remove`` counts.

    Samples are copies of a few hundred pre-drawn ones with unique, increasing past timestamps,
    so the load generator spends its core on the agent's transport, not on drawing metrics.
    """

    def __init__(self, host: SyntheticHost) -> None:
        self._templates = [host.sample() for _ in range(256)]
        self._keys = itertools.count()
        self._first_ts = time.time() - 86_400
        self._pending: list[tuple[int, Sample]] = []
        self.removed = 0

    @property
    def dropped(self) -> int:
        return 0

    def __len__(self) -> int:
        return 1_000_000

    def extend(self, samples: Iterable[Sample]) -> None:
        """Live samples are ignored: the backlog never ends."""

    def peek(self, limit: int, exclude: Iterable[int] = frozenset()) -> list[tuple[int, Sample]]:
        skip = exclude if isinstance(exclude, set | frozenset) else frozenset(exclude)
        rows = [row for row in self._pending if row[0] not in skip][:limit]
        while len(rows) < limit:
            key = next(self._keys)
            row = (key, {**self._templates[key % 256], "ts": self._first_ts + key * 0.001})
            self._pending.append(row)
            rows.append(row)
        return rows

    def remove(self, keys: Iterable[int]) -> None:
        gone = set(keys)
        self.removed += len(gone)
        self._pending = [row for row in self._pending if row[0] not in gone]

    def close(self) -> None:
        """Nothing to release."""


ROLL_UP_WAIT = 180.0  # seconds a window's samples may take to be folded


def _folded(db: Path) -> tuple[int, int]:
    """(the highest sample id, the roll-up's watermark: every sample up to it is in the tiers)."""
    return _rows(db), _read_int(db, "SELECT watermark FROM rollup_state")


async def _roll_up_cost(hub: HubProcess) -> dict[str, Any]:
    """After a window (its load gone, the hub otherwise idle): the hub's CPU until its roll-up has
    folded every sample stored (its next pass, at most 30 s away), per sample folded. What every
    sample stored costs the hub once more while it keeps ingesting; the window itself (20 s from
    a fresh hub) ends before the first pass with samples to fold."""
    proc = hub.process()
    cpu = sum(proc.cpu_times()[:2])
    started = time.monotonic()
    high, low = _folded(hub.db)
    async with asyncio.timeout(ROLL_UP_WAIT):
        while True:
            await asyncio.sleep(0.1)
            newest, watermark = _folded(hub.db)
            if newest > high:  # frames still in flight at the window's end
                high = newest
            elif watermark >= high:
                break
    cpu = sum(proc.cpu_times()[:2]) - cpu
    count = high - low
    return {
        "roll_up_samples": count,
        "roll_up_cpu_seconds": round(cpu, 2),
        "roll_up_us_per_sample": round(1e6 * cpu / count, 2) if count else None,
        "roll_up_waited_seconds": round(time.monotonic() - started, 1),
    }


def _read_int(db: Path, sql: str) -> int:
    """One integer from the hub's database, read-only beside the running hub."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


# What a first-seen window shares its hub with: every device seen before it, and the devices of
# the windows 30 s (``http_offline_after``) before it timing out during it, each a transaction.
_DEVICES = "SELECT count(*) FROM devices"
_TIMEOUTS = "SELECT count(*) FROM presence_events WHERE online = 0"


def _rows(db: Path) -> int:
    return _read_int(db, "SELECT coalesce(max(id), 0) FROM samples")


async def _ws_rate(hub: HubProcess, window: float, runs: int) -> list[dict[str, Any]]:
    fleet = fleet_for(hub, AGENTS, interval=3600.0, prefix="ingest-")
    for member in fleet.members:
        member.agent.spool = EndlessSpool(SyntheticHost(random.Random(member.agent.identity.device_id)))
    results = []
    async with running_fleet(fleet):
        await wait_for(lambda: fleet.connected() == AGENTS, 60, "ingest agents online")
        await wait_for(lambda: _rows(hub.db) > 0, 30, "first rows stored")
        await asyncio.sleep(2.0)  # warm-up: batches reach their steady size
        proc = hub.process()
        me = psutil.Process()
        for _ in range(runs):
            rows0, t0, cpu0 = _rows(hub.db), time.monotonic(), sum(proc.cpu_times()[:2])
            load0 = sum(me.cpu_times()[:2])
            await asyncio.sleep(window)
            rows1, t1, cpu1 = _rows(hub.db), time.monotonic(), sum(proc.cpu_times()[:2])
            load1 = sum(me.cpu_times()[:2])
            results.append(
                {
                    "samples_per_second": round((rows1 - rows0) / (t1 - t0)),
                    "hub_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
                    "load_generator_cpu_percent": round(100 * (load1 - load0) / (t1 - t0), 1),
                    "rows": rows1 - rows0,
                    "seconds": round(t1 - t0, 2),
                }
            )
    return results


LEGACY_HEADER = f"X-Auth-Token: {TOKEN}"


def ingest_request(device: str, auth: str = LEGACY_HEADER) -> bytes:
    """The original agent's ``/ingest`` request; ``auth`` is one header line (no CRLF)."""
    body = orjson.dumps(
        {
            "device_id": device,
            "hostname": device,
            "cpu": 12.5,
            "ram": 40.1,
            "disk": 55.0,
            "uptime_sec": 12345,
            "agent_version": "1.0.0",
            "status": "ok",
            "last_error": "",
        }
    )
    head = (
        f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _rest_client(
    port: int, device: str, until: float, counts: list[int], first_seen: bool = False
) -> None:
    """One keep-alive connection posting the original agent's payload back to back.

    ``first_seen``: every request names a device the hub has never seen (``device``-N).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = ingest_request(device)
    n = 0
    try:
        while time.monotonic() < until:
            if first_seen:
                n += 1
                request = ingest_request(f"{device}-{n:06d}")
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if b" 200 " in status:
                counts[0] += 1
            else:
                counts[1] += 1
    finally:
        writer.close()


async def _rest_window(
    hub: HubProcess, window: float, clients: int, prefix: str, first_seen: bool
) -> dict[str, Any]:
    counts = [0, 0]
    held, timeouts = _read_int(hub.db, _DEVICES), _read_int(hub.db, _TIMEOUTS)
    proc, me = hub.process(), psutil.Process()
    started, cpu0, load0 = time.monotonic(), sum(proc.cpu_times()[:2]), sum(me.cpu_times()[:2])
    await asyncio.gather(
        *(
            _rest_client(hub.port, f"{prefix}{i:03d}", started + window, counts, first_seen)
            for i in range(clients)
        )
    )
    elapsed = time.monotonic() - started
    cpu1, load1 = sum(proc.cpu_times()[:2]), sum(me.cpu_times()[:2])
    return {
        "requests_per_second": round(counts[0] / elapsed),
        "errors": counts[1],
        "hub_cpu_percent": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "load_generator_cpu_percent": round(100 * (load1 - load0) / elapsed, 1),
        "devices_held_at_start": held,
        "http_timeouts_stored": _read_int(hub.db, _TIMEOUTS) - timeouts,
    }


async def _rest_rate(
    hub: HubProcess, window: float, runs: int, clients: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fixed devices and first-seen devices, windows back to back, their order alternating."""
    fixed: list[dict[str, Any]] = []
    fresh: list[dict[str, Any]] = []
    for n in range(runs):
        order = (False, True) if n % 2 == 0 else (True, False)
        for first_seen in order:
            prefix = f"new{n}-" if first_seen else "rest-"
            result = await _rest_window(hub, window, clients, prefix, first_seen)
            (fresh if first_seen else fixed).append(result)
    return fixed, fresh


async def _stored_rows(hub: HubProcess) -> int:
    return await asyncio.get_running_loop().run_in_executor(None, _rows, hub.db)


async def _floor_frames(hub: HubProcess) -> int:
    async with httpx.AsyncClient() as client:
        return int((await client.get(f"{hub.http_url}/count")).json()["frames"])


async def _light_window(
    hub: HubProcess,
    agents: int,
    per_frame: int,
    window: float,
    prefix: str,
    count: Callable[[HubProcess], Awaitable[int]] = _stored_rows,
) -> dict[str, Any]:
    """One window of ``bench/live_load.py``; the hub's rows (``count``) and CPU over the generator's
    own window."""
    command = [
        *taskset(LOAD_CORE),
        sys.executable,
        "-m",
        "bench.live_load",
        hub.ws_url,
        TOKEN,
        str(agents),
        str(per_frame),
        str(window),
        prefix,
    ]
    proc = hub.process()
    gen = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    assert gen.stdout is not None
    start: tuple[int, float, float] | None = None
    end: tuple[int, float, float] | None = None
    result: dict[str, Any] = {}
    async with asyncio.timeout(window + 180):
        while line := await gen.stdout.readline():
            event = json.loads(line)
            now = (
                await count(hub),
                time.monotonic(),
                sum(proc.cpu_times()[:2]),
            )
            if event["event"] == "window_start":
                start = now
            elif event["event"] == "window_end":
                end = now
            else:
                result = event
        if await gen.wait() != 0 or start is None or end is None:
            raise RuntimeError(f"bench.live_load failed: {command}")
    rows, seconds, cpu = end[0] - start[0], end[1] - start[1], end[2] - start[2]
    return {
        "agents": agents,
        "samples_per_frame": per_frame,
        "samples_per_second": round(rows / seconds),
        "hub_cpu_percent": round(100 * cpu / seconds, 1),
        "hub_us_per_sample": round(1e6 * cpu / rows, 2) if rows else None,
        "load_generator_cpu_percent": result.get("load_generator_cpu_percent"),
        "samples_sent_per_second": result.get("samples_sent_per_second"),
        "rows": rows,
        "seconds": round(seconds, 2),
    }


Windows = list[dict[str, Any]]


async def _live_vs_batched(
    folder: Path, agents: int, window: float, runs: int
) -> tuple[Windows, Windows, Windows]:
    """Live single-sample frames from ``agents``, batches of 500 from 16, and the live load against
    ``bench/live_floor.py`` (the stack's own cost per frame); the order rotates from run to run.

    Each window gets a fresh hub and database: on a shared hub, batched windows that followed a
    live one cost 2.6x more CPU per sample (1,000 closed connections to settle, spread indexes).
    """
    live: Windows = []
    batched: Windows = []
    floor: Windows = []
    kinds = ("live", "batched", "floor")
    floor_command = [*taskset(HUB_CORE), sys.executable, "-m", "bench.live_floor"]
    for n in range(runs):
        for kind in kinds[n % 3 :] + kinds[: n % 3]:
            command = floor_command if kind == "floor" else None
            async with running_hub(folder / f"run{n}-{kind}", command=command) as hub:
                if kind == "live":
                    live.append(await _light_window(hub, agents, 1, window, "live-"))
                elif kind == "floor":  # frames decoded, not rows: it stores nothing
                    floor.append(await _light_window(hub, agents, 1, window, "floor-", _floor_frames))
                else:
                    measured = await _light_window(hub, AGENTS, BATCH, window, "batch-")
                    batched.append(measured | await _roll_up_cost(hub))
    return live, batched, floor


def _raw(folder: Path, rows: int, runs: int, devices: int = AGENTS) -> list[dict[str, Any]]:
    results = []
    for n in range(runs):
        db = folder / f"raw{n}-{devices}.db"
        out = subprocess.run(
            [*taskset(HUB_CORE), sys.executable, "-m", "bench.raw_sqlite", str(db), str(rows), str(devices)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout))
    return results


def _bound(windows: list[dict[str, Any]]) -> str:
    """What limited the windows: the load generator at LOAD_LIMIT % of its core, the hub at
    HUB_LIMIT % of its own, else neither (the agents' windows of unstored frames, commit latency)."""
    load = max((w.get("load_generator_cpu_percent") or 0.0 for w in windows), default=0.0)
    hub = statistics.median(w.get("hub_cpu_percent") or 0.0 for w in windows) if windows else 0.0
    if load >= LOAD_LIMIT:
        return f"load generator ({load:.0f} % of its core)"
    if hub >= HUB_LIMIT:
        return f"hub ({hub:.0f} % of its core)"
    return f"neither (hub {hub:.0f} %, load generator {load:.0f} %)"


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    window = scale.pick(2.0, 30.0)
    live_agents = scale.pick(50, LIVE_AGENTS)
    live_runs, batched_runs, floor_runs = await _live_vs_batched(
        folder / "live", live_agents, scale.pick(2.0, 20.0), scale.runs
    )
    async with running_hub(folder / "ws") as hub:
        ws_runs = await _ws_rate(hub, window, scale.runs)
    async with running_hub(folder / "rest") as hub:
        rest_runs, rest_new_runs = await _rest_rate(hub, scale.pick(1.0, 10.0), scale.runs, 32)
    raw_runs = _raw(folder, scale.pick(20_000, 600_000), scale.runs)
    raw_many_runs = _raw(folder, scale.pick(20_000, 600_000), scale.runs, live_agents)
    ws = median_of(ws_runs, "samples_per_second")
    raw = median_of(raw_runs, "rows_per_second")
    ratio = round(ws / raw, 3) if raw else 0.0
    live = median_of(live_runs, "samples_per_second")
    batched = median_of(batched_runs, "samples_per_second")
    live_us = median_of(live_runs, "hub_us_per_sample")
    batched_us = median_of(batched_runs, "hub_us_per_sample")
    cost_ratio = round(live_us / batched_us, 2) if batched_us else float("nan")
    floor_us = median_of(floor_runs, "hub_us_per_sample")
    floor_ratio = round(floor_us / batched_us, 2) if batched_us else float("nan")
    batched_ratio = round(batched / raw, 3) if raw else 0.0
    roll_up_us = median_of(batched_runs, "roll_up_us_per_sample")
    rest_new = median_of(rest_new_runs, "requests_per_second")
    return {
        "scenario": "ingest",
        "agents": AGENTS,
        "live_agents": live_agents,
        "window_seconds": window,
        "live_runs": live_runs,
        "light_batched_runs": batched_runs,
        "floor_runs": floor_runs,
        "floor_frames_per_second": median_of(floor_runs, "samples_per_second"),
        "floor_us_per_frame": floor_us,
        "floor_over_batched_cost": floor_ratio,
        "floor_bound_by": _bound(floor_runs),
        "ws_runs": ws_runs,
        "raw_runs": raw_runs,
        "raw_many_devices_runs": raw_many_runs,
        "raw_many_devices_rows_per_second": median_of(raw_many_runs, "rows_per_second"),
        "rest_runs": rest_runs,
        "rest_first_seen_runs": rest_new_runs,
        "live_samples_per_second": live,
        "live_hub_us_per_sample": live_us,
        "live_bound_by": _bound(live_runs),
        "light_batched_samples_per_second": batched,
        "light_batched_hub_us_per_sample": batched_us,
        "light_batched_bound_by": _bound(batched_runs),
        "live_over_batched_cost": cost_ratio,
        "light_batched_ratio": batched_ratio,
        # The hub's roll-up of each batched window's samples (its next pass), and the share of raw
        # the batches would keep with it, at the window's CPU per sample and rate per CPU.
        "light_batched_roll_up_us_per_sample": roll_up_us,
        "light_batched_ratio_with_roll_up": (
            round(batched_ratio * batched_us / (batched_us + roll_up_us), 3)
            if batched_us and roll_up_us
            else None
        ),
        "ws_samples_per_second": ws,
        "ws_bound_by": _bound(ws_runs),
        "raw_rows_per_second": raw,
        "ratio": ratio,
        "rest_requests_per_second": median_of(rest_runs, "requests_per_second"),
        "rest_first_seen_requests_per_second": rest_new,
        "targets": {
            f"live single-sample frames from {live_agents:,} agents, samples/s stored": {
                "target": ">= 50000",
                "achieved": live,
                "met": live >= 50_000,
            },
            "hub CPU per live sample / per sample in batches of 500": {
                "target": "<= 1.5x",
                "achieved": f"{cost_ratio}x ({live_us} / {batched_us} us); the stack alone: {floor_ratio}x",
                "met": cost_ratio <= 1.5,
            },
            "batches of 500 (light generator): share of raw executemany (16 devices)": {
                "target": ">= 60%",
                "achieved": f"{batched_ratio:.0%}",
                "met": batched_ratio >= 0.6,
            },
            "samples/s stored via WebSockets (agent transport replaying)": {
                "target": ">= 20000",
                "achieved": ws,
                "met": ws >= 20_000,
            },
            "share of raw executemany (agent transport replaying)": {
                "target": ">= 25%",
                "achieved": f"{ratio:.0%}",
                "met": ratio >= 0.25,
            },
            "REST /ingest, a first-seen device per request, req/s": {
                "target": ">= 5000",
                "achieved": rest_new,
                "met": rest_new >= 5000,
            },
        },
    }
