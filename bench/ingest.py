"""Scenario 3, ingest: samples/s stored in SQLite through WebSockets, vs raw executemany; REST req/s.

WebSocket load: virtual agents replaying a backlog, which is how an agent sends many samples:
the real transport takes up to 500 spooled samples per ``metrics_batch`` frame, keeps a few
frames in flight and forgets samples only on the hub's ``stored`` frame (sent after their
commit). The spool here is endless (a bench-only ``Spool`` that makes samples as they are
read), so the rate can be held for the whole window. Rows are counted in the database file.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.common import (
    HUB_CORE,
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


def _rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM samples").fetchone()[0])
    finally:
        conn.close()


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


async def _rest_client(port: int, device: str, until: float, counts: list[int]) -> None:
    """One keep-alive connection posting the original agent's payload back to back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = ingest_request(device)
    try:
        while time.monotonic() < until:
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


async def _rest_rate(hub: HubProcess, window: float, runs: int, clients: int) -> list[dict[str, Any]]:
    results = []
    for _ in range(runs):
        counts = [0, 0]
        started = time.monotonic()
        await asyncio.gather(
            *(_rest_client(hub.port, f"rest-{i:03d}", started + window, counts) for i in range(clients))
        )
        elapsed = time.monotonic() - started
        results.append({"requests_per_second": round(counts[0] / elapsed), "errors": counts[1]})
    return results


def _raw(folder: Path, rows: int, runs: int) -> list[dict[str, Any]]:
    results = []
    for n in range(runs):
        db = folder / f"raw{n}.db"
        out = subprocess.run(
            [*taskset(HUB_CORE), sys.executable, "-m", "bench.raw_sqlite", str(db), str(rows)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout))
    return results


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    window = scale.pick(2.0, 30.0)
    async with running_hub(folder / "ws") as hub:
        ws_runs = await _ws_rate(hub, window, scale.runs)
    async with running_hub(folder / "rest") as hub:
        rest_runs = await _rest_rate(hub, scale.pick(1.0, 10.0), scale.runs, 32)
    raw_runs = _raw(folder, scale.pick(20_000, 600_000), scale.runs)
    ws = median_of(ws_runs, "samples_per_second")
    raw = median_of(raw_runs, "rows_per_second")
    ratio = round(ws / raw, 3) if raw else 0.0
    return {
        "scenario": "ingest",
        "agents": AGENTS,
        "window_seconds": window,
        "ws_runs": ws_runs,
        "raw_runs": raw_runs,
        "rest_runs": rest_runs,
        "ws_samples_per_second": ws,
        "raw_rows_per_second": raw,
        "ratio": ratio,
        "rest_requests_per_second": median_of(rest_runs, "requests_per_second"),
        "targets": {
            "samples/s stored via WebSockets": {
                "target": ">= 20000",
                "achieved": ws,
                "met": ws >= 20_000,
            },
            "share of raw executemany": {
                "target": ">= 25%",
                "achieved": f"{ratio:.0%}",
                "met": ratio >= 0.25,
            },
        },
    }
