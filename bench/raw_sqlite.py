"""The ingest baseline: plain ``sqlite3.executemany`` into the hub's own schema, no hub at all.

Run as ``python -m bench.raw_sqlite DB ROWS [DEVICES]`` (rows round-robin over DEVICES, 16 by
default; the runner pins it to the hub's core); prints JSON.
Rows have the shape the hub stores (typed columns + the extra fields as JSON), built beforehand:
only the inserts and commits are timed, so this is the ceiling for the same schema and batch size.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
from pathlib import Path

import orjson

from monitor_agent.simulator import SyntheticHost
from monitor_server.store.schema import MIGRATIONS

BATCH = 2000  # the hub's default batch_max_rows


def rows(count: int, devices: int = 16) -> list[tuple[object, ...]]:
    hosts = [SyntheticHost(random.Random(i)) for i in range(devices)]
    now = time.time()
    out: list[tuple[object, ...]] = []
    for n in range(count):
        s = hosts[n % devices].sample()
        extra = {k: v for k, v in s.items() if k not in {"cpu", "ram", "disk", "uptime_sec", "status"}}
        extra.update({"hostname": f"ingest-{n % devices:05d}", "agent_version": "0.1.0", "spool_dropped": 0})
        out.append(
            (
                f"ingest-{n % devices:05d}",
                now - count + n,
                s["cpu"],
                s["ram"],
                s["disk"],
                s["uptime_sec"],
                s["status"],
                orjson.dumps(extra).decode(),
            )
        )
    return out


def main(db: Path, count: int, devices: int = 16) -> dict[str, float]:
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"):
        conn.execute(pragma)
    conn.executescript(f"BEGIN; {MIGRATIONS[0]}; COMMIT;")
    data = rows(count, devices)
    started = time.perf_counter()
    for i in range(0, count, BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO samples (device_id, ts, cpu, ram, disk, uptime_sec, status, extra)"
            " VALUES (?,?,?,?,?,?,?,?)",
            data[i : i + BATCH],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return {"rows": count, "seconds": round(elapsed, 3), "rows_per_second": round(count / elapsed)}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]), *(int(a) for a in sys.argv[3:4]))))
