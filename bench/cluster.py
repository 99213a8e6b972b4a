"""Scenario 10, several hubs on one PostgreSQL database (DESIGN §13, issue 13).

Every hub is a real ``monitor-server`` process; with two hubs both are pinned to core 0 (the hub
core), the load generator to core 1, and PostgreSQL is not pinned (it runs where the kernel puts
it, on either core). Each measurement gets a fresh schema (``CREATE SCHEMA``, dropped CASCADE at
the end) on the server named by ``MONITOR_BENCH_PG`` (else ``MONITOR_TEST_PG``, else the CI one on
127.0.0.1); a server that cannot be reached fails the scenario, never skips it.

1. Cross-hub push: agents split over hubs A and B; a commander posts 10 commands/s over REST,
   alternating command by command between the hub the target agent is NOT on (the notice crosses
   PostgreSQL LISTEN/NOTIFY) and the hub it is on (the baseline), so both see the same moments.
2. Ingest: ``bench/live_load.py`` (batches of 500 from 16 connections, and live one-sample frames
   from many) into one hub on PostgreSQL and one hub on SQLite, a fresh hub and database per
   window; raw ``COPY`` (asyncpg ``copy_records_to_table``) of pre-built rows into the same
   ``samples`` table in a fresh schema, and raw SQLite ``executemany`` (``bench/raw_sqlite.py``);
   the four in one run, their order rotating from run to run.
3. Takeover: hubs A and B; agents on A given both URLs (they fail over to B) and a few given only
   A's (they cannot: only the takeover marks them offline); ``kill -9`` A; B's REST view is polled
   until every device is either offline (``hub_lost``) or online again through B, and the times
   are read from the presence timestamps B serves.
4. Capacity: agents sending one sample every 5 s, half on each hub, in steps; per hub CPU, RSS and
   sessions, PostgreSQL's CPU (the two hubs' backends and the server's own processes) and the load
   generator's, all in the same windows.

``python -m bench.cluster copy URL ROWS [DEVICES]`` is the raw COPY baseline alone (the runner
starts it pinned to the hub core, as it does ``bench.raw_sqlite``); it prints JSON.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import re
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from bench.common import (
    HUB_CORE,
    LOAD_CORE,
    TOKEN,
    CpuMeter,
    HubProcess,
    Scale,
    fleet_for,
    median_of,
    running_fleet,
    summary_ms,
    taskset,
    wait_for,
)
from bench.ingest import _rows as sqlite_rows
from bench.push import RATE, Clock, _post
from monitor_agent.connection import LinkState, WsSettings, WsTransport
from monitor_agent.simulator import Fleet

PG_URL = (
    os.environ.get("MONITOR_BENCH_PG")
    or os.environ.get("MONITOR_TEST_PG")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
COPY_BATCH = 2000  # rows per COPY, as raw_sqlite's executemany batches (the hub's batch_max_rows)
INGEST_AGENTS = 16
BATCH = 500
SAMPLE_INTERVAL = 5.0  # the agent's default: one sample every 5 s

log = logging.getLogger("bench.cluster")


# PostgreSQL: a fresh schema per measurement ---------------------------------------------------


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` (asyncpg sends unknown parameters as settings)."""
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A new empty schema ``bench_<hex>``; yields a URL that uses it; dropped (CASCADE) at the end."""
    schema = f"bench_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(PG_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"bench cluster needs PostgreSQL at {PG_URL} (set MONITOR_BENCH_PG): {exc}"
        ) from exc
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(PG_URL, schema)
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


def pg_hub(folder: Path, url: str, **env: str) -> HubProcess:
    """A hub process on the PostgreSQL database ``url`` (its data dir in ``folder``)."""
    return HubProcess(folder, {"MONITOR_DB": url, "MONITOR_DATA_DIR": str(folder), **env})


@contextlib.asynccontextmanager
async def running_hubs(hubs: Sequence[HubProcess]) -> AsyncIterator[Sequence[HubProcess]]:
    """Start every hub at once (the migrations run once, under an advisory lock); stop all at the end."""
    try:
        await asyncio.gather(*(hub.start() for hub in hubs))
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()


async def stored_samples(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM samples"))
    finally:
        await conn.close()


def api(hub: HubProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}, timeout=30)


def with_failover(fleet: Fleet, urls: Sequence[str]) -> Fleet:
    """Give every member of ``fleet`` (not started) the further hub ``urls`` (round robin)."""
    for member in fleet.members:
        old = member.transport
        member.transport = WsTransport(
            WsSettings(
                url=old.settings.url,
                token=old.settings.token,
                failover_urls=tuple(urls),
                backoff_base=old.settings.backoff_base,
                backoff_cap=old.settings.backoff_cap,
                auth_retry_delay=old.settings.auth_retry_delay,
            ),
            rng=old.rng,
        )
    return fleet


ANOMALIES = {
    "taken_for_dead": "taken for dead by another hub",
    "hub_lost_takeovers": "of its devices offline (hub_lost)",
    "welcome_after_close": "IllegalTransition: welcome in state closed",
    "errors": " ERROR ",
}


def anomalies(hubs: Sequence[HubProcess]) -> dict[str, Any]:
    """How often each hub's log says what should not happen in a benchmark (per hub, in order),
    and the most frequent ERROR and WARNING lines (numbers blanked) under ``lines``."""
    texts = [h.log_path.read_text(errors="replace") if h.log_path.exists() else "" for h in hubs]
    found: dict[str, Any] = {key: [t.count(needle) for t in texts] for key, needle in ANOMALIES.items()}
    kinds: collections.Counter[str] = collections.Counter()
    for hub, text in zip("AB", texts, strict=False):
        for line in text.splitlines():
            if (" ERROR " in line or " WARNING " in line) and "legacy fleet token" not in line:
                kinds[f"{hub}: " + re.sub(r"[0-9a-f]*[0-9][0-9a-f]*", "N", line.split(" ", 2)[-1])[:200]] += 1
    found["lines"] = dict(kinds.most_common(8))
    return found


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


# 1. Cross-hub push ----------------------------------------------------------------------------


async def _push_window(
    clients: dict[int, httpx.AsyncClient],
    home: dict[str, int],
    clock: Clock,
    seconds: float,
    rng: random.Random,
    run: int,
    hubs: Sequence[HubProcess],
) -> dict[str, Any]:
    """RATE commands/s to random agents, alternating: posted to the other hub, to the agent's own."""
    ids = sorted(home)
    posted: dict[str, list[tuple[int, float, float]]] = {"cross": [], "same": []}
    meters = [CpuMeter(h.process()) for h in hubs]
    for meter in meters:
        meter.start()
    start = time.perf_counter()
    for n in range(int(seconds * RATE)):
        await asyncio.sleep(max(0.0, start + n / RATE - time.perf_counter()))
        device = rng.choice(ids)
        cross = (n + run) % 2 == 0
        via = 1 - home[device] if cross else home[device]
        posted["cross" if cross else "same"].append(await _post(clients[via], device))
    cpu = [m.stop() for m in meters]
    every = [row for rows in posted.values() for row in rows]
    await wait_for(lambda: all(cid in clock.arrived for cid, _, _ in every), 30, "every push arrived")
    out: dict[str, Any] = {"hub_cpu_percent": cpu}
    for mode, rows in posted.items():
        out[mode] = {
            "after_return": summary_ms([max(0.0, clock.arrived[c] - returned) for c, _, returned in rows]),
            "from_request": summary_ms([clock.arrived[c] - sent for c, sent, _ in rows]),
            "arrived_before_return": sum(1 for c, _, returned in rows if clock.arrived[c] <= returned),
        }
    return out


async def cross_push(folder: Path, scale: Scale) -> dict[str, Any]:
    agents: int = scale.pick(50, 1000)
    window: float = scale.pick(2.0, 15.0)
    clock = Clock()
    rng = random.Random(13)
    async with pg_schema() as url:
        hubs = [pg_hub(folder / "a", url), pg_hub(folder / "b", url)]
        async with running_hubs(hubs):
            half = agents // 2
            fleets = [
                fleet_for(hubs[0], half, on_command=clock.hook, prefix="xa-", ramp=scale.pick(0.3, 2.0)),
                fleet_for(
                    hubs[1], agents - half, on_command=clock.hook, prefix="xb-", ramp=scale.pick(0.3, 2.0)
                ),
            ]
            home = {m.agent.identity.device_id: i for i, f in enumerate(fleets) for m in f.members}
            async with running_fleet(fleets[0]), running_fleet(fleets[1]):
                connect_s = await wait_for(
                    lambda: sum(f.connected() for f in fleets) == agents, 120, f"{agents} agents online"
                )
                async with api(hubs[0]) as ca, api(hubs[1]) as cb:
                    clients = {0: ca, 1: cb}
                    await _push_window(clients, home, clock, scale.pick(0.5, 2.0), rng, 0, hubs)  # warm-up
                    windows = [
                        await _push_window(clients, home, clock, window, rng, n, hubs)
                        for n in range(scale.runs)
                    ]
                still_online = sum(f.connected() for f in fleets)
        hub_logs = anomalies(hubs)
    runs = [
        {
            f"{mode}_{measure}_{k}": w[mode][measure][k]
            for mode in ("cross", "same")
            for measure in ("after_return", "from_request")
            for k in ("p50_ms", "p99_ms", "max_ms", "n")
        }
        | {
            "cross_arrived_before_return": w["cross"]["arrived_before_return"],
            "same_arrived_before_return": w["same"]["arrived_before_return"],
            "hub_cpu_percent": w["hub_cpu_percent"],
        }
        for w in windows
    ]
    return {
        "agents": agents,
        "agents_per_hub": [len(f.members) for f in fleets],
        "connect_seconds": round(connect_s, 2),
        "online_at_end": still_online,
        "hub_log": hub_logs,
        "window_seconds": window,
        "rate_per_second": RATE,
        "runs": runs,
        **{
            f"{mode}_{measure}": {
                k: median_of(runs, f"{mode}_{measure}_{k}") for k in ("p50_ms", "p99_ms", "max_ms")
            }
            for mode in ("cross", "same")
            for measure in ("after_return", "from_request")
        },
    }


# 2. Ingest: PostgreSQL hub vs SQLite hub vs raw COPY vs raw executemany --------------------------


async def _load_window(
    hub: HubProcess,
    count: Callable[[], Awaitable[int]],
    agents: int,
    per_frame: int,
    window: float,
    prefix: str,
) -> dict[str, Any]:
    """One window of ``bench/live_load.py`` (as bench/ingest.py runs it), rows counted by ``count``."""
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
            now = (await count(), time.monotonic(), sum(proc.cpu_times()[:2]))
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


async def _hub_window(
    folder: Path, backend: str, agents: int, per_frame: int, window: float
) -> dict[str, Any]:
    prefix = "live-" if per_frame == 1 else "batch-"
    if backend == "sqlite":
        hub = HubProcess(folder)
        loop = asyncio.get_running_loop()

        async def count_sqlite() -> int:
            return await loop.run_in_executor(None, sqlite_rows, hub.db)

        async with running_hubs([hub]):
            return await _load_window(hub, count_sqlite, agents, per_frame, window, prefix)
    async with pg_schema() as url:
        hub = pg_hub(folder, url)

        async def count_pg() -> int:
            return await stored_samples(url)

        async with running_hubs([hub]):
            return await _load_window(hub, count_pg, agents, per_frame, window, prefix)


async def _raw_copy(rows: int, devices: int) -> dict[str, Any]:
    async with pg_schema() as url:
        gen = await asyncio.create_subprocess_exec(
            *taskset(HUB_CORE),
            sys.executable,
            "-m",
            "bench.cluster",
            "copy",
            url,
            str(rows),
            str(devices),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await gen.communicate()
        if gen.returncode != 0:
            raise RuntimeError("python -m bench.cluster copy failed")
        result: dict[str, Any] = json.loads(out)
        return result


async def _raw_executemany(folder: Path, rows: int, devices: int) -> dict[str, Any]:
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    gen = await asyncio.create_subprocess_exec(
        *taskset(HUB_CORE),
        sys.executable,
        "-m",
        "bench.raw_sqlite",
        str(folder / "raw.db"),
        str(rows),
        str(devices),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await gen.communicate()
    if gen.returncode != 0:
        raise RuntimeError("python -m bench.raw_sqlite failed")
    result: dict[str, Any] = json.loads(out)
    return result


async def ingest(folder: Path, scale: Scale) -> dict[str, Any]:
    window: float = scale.pick(1.0, 5.0)
    live_agents: int = scale.pick(20, 1000)
    raw_rows: int = scale.pick(20_000, 100_000)
    steps: list[tuple[str, Callable[[Path], Awaitable[dict[str, Any]]]]] = [
        ("pg_batched", lambda f: _hub_window(f, "pg", INGEST_AGENTS, BATCH, window)),
        ("sqlite_batched", lambda f: _hub_window(f, "sqlite", INGEST_AGENTS, BATCH, window)),
        ("raw_copy", lambda f: _raw_copy(raw_rows, INGEST_AGENTS)),
    ]
    # The CI smoke run skips what other code already exercises there (bench.raw_sqlite runs in
    # the ingest scenario; live frames are the same window with another frame size): each hub
    # window costs live_load's 3 s warm-up.
    # Live frames (1,000 connections to open each window) only in the first run: time.
    live: list[tuple[str, Callable[[Path], Awaitable[dict[str, Any]]]]] = []
    if not scale.quick:
        steps.append(("raw_executemany", lambda f: _raw_executemany(f, raw_rows, INGEST_AGENTS)))
        live = [
            ("pg_live", lambda f: _hub_window(f, "pg", live_agents, 1, window)),
            ("sqlite_live", lambda f: _hub_window(f, "sqlite", live_agents, 1, window)),
        ]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in steps + live}
    orders = []
    for n in range(scale.runs):
        shift = n % len(steps)
        order = steps[shift:] + steps[:shift] + (live if n == 0 else [])
        orders.append([name for name, _ in order])
        for name, step in order:
            started = time.monotonic()
            runs[name].append(await step(folder / f"run{n}" / name))
            log.debug("bench: cluster: ingest %s took %.1f s", name, time.monotonic() - started)
    rate = {
        name: median_of(r, "rows_per_second" if name.startswith("raw") else "samples_per_second")
        for name, r in runs.items()
    }

    def share(a: str, b: str) -> float | None:
        return round(rate[a] / rate[b], 3) if rate.get(a) and rate.get(b) else None

    return {
        "window_seconds": window,
        "agents": INGEST_AGENTS,
        "live_agents": live_agents,
        "raw_rows": raw_rows,
        "orders": orders,
        "runs": runs,
        "rate": rate,
        "hub_us_per_sample": {
            name: median_of(r, "hub_us_per_sample") for name, r in runs.items() if not name.startswith("raw")
        },
        "hub_cpu_percent": {
            name: median_of(r, "hub_cpu_percent") for name, r in runs.items() if not name.startswith("raw")
        },
        "shares": {
            "pg_batched_of_raw_copy": share("pg_batched", "raw_copy"),
            "sqlite_batched_of_raw_executemany": share("sqlite_batched", "raw_executemany"),
            "pg_batched_of_sqlite_batched": share("pg_batched", "sqlite_batched"),
            "pg_live_of_sqlite_live": share("pg_live", "sqlite_live"),
            "raw_copy_of_raw_executemany": share("raw_copy", "raw_executemany"),
        },
    }


async def raw_copy_main(url: str, count: int, devices: int) -> dict[str, Any]:
    """COPY ``count`` pre-built rows (raw_sqlite's shape) into ``samples`` of the schema in ``url``."""
    from bench.raw_sqlite import rows
    from monitor_server.store.pg_schema import migrate

    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        data = rows(count, devices)
        columns = ["device_id", "ts", "cpu", "ram", "disk", "uptime_sec", "status", "extra"]
        started = time.perf_counter()
        for i in range(0, count, COPY_BATCH):
            async with conn.transaction():
                await conn.copy_records_to_table("samples", records=data[i : i + COPY_BATCH], columns=columns)
        elapsed = time.perf_counter() - started
        stored = int(await conn.fetchval("SELECT count(*) FROM samples"))
    finally:
        await conn.close()
    return {"rows": stored, "seconds": round(elapsed, 3), "rows_per_second": round(count / elapsed)}


# 3. Takeover after kill -9 ---------------------------------------------------------------------


async def _takeover_run(folder: Path, scale: Scale, env: dict[str, str]) -> dict[str, Any]:
    agents: int = scale.pick(20, 500)
    stranded: int = scale.pick(4, 20)
    async with pg_schema() as url:
        a, b = pg_hub(folder / "a", url, **env), pg_hub(folder / "b", url, **env)
        async with running_hubs([a, b]):
            ramp = scale.pick(0.3, 2.0)
            movers = with_failover(fleet_for(a, agents, prefix="fo-", ramp=ramp), [b.ws_url])
            stuck = fleet_for(a, stranded, prefix="only-a-", ramp=ramp)
            async with running_fleet(movers), running_fleet(stuck), api(b) as view:
                everyone = agents + stranded

                async def devices() -> list[dict[str, Any]]:
                    answer: list[dict[str, Any]] = (await view.get("/devices")).json()
                    return answer

                await wait_for(
                    lambda: movers.connected() + stuck.connected() == everyone, 120, "agents online on A"
                )
                async with asyncio.timeout(60):
                    while sum(1 for d in await devices() if d["online"]) < everyone:
                        await asyncio.sleep(0.2)
                before = {m.agent.identity.device_id: m.transport.connections for m in movers.members}
                killed_wall = time.time()
                a.kill()
                killed = time.monotonic()
                agents_back: float | None = None
                seen_offline: set[str] = set()
                listed_back: dict[str, float] = {}  # device -> poll (s from the kill) first listing it back
                polls = 0
                async with asyncio.timeout(scale.pick(40, 90)):
                    while True:
                        now = time.monotonic() - killed
                        if agents_back is None and all(
                            m.transport.connections > before[m.agent.identity.device_id]
                            and m.transport.state is LinkState.CONNECTED
                            for m in movers.members
                        ):
                            agents_back = now
                        listed = await devices()
                        polls += 1
                        seen_offline.update(d["device_id"] for d in listed if not d["online"])
                        movers_back = [
                            d
                            for d in listed
                            if d["device_id"].startswith("fo-")
                            and d["online"]
                            and (_since(d["presence_since"]) or 0) > killed_wall
                        ]
                        for d in movers_back:
                            listed_back.setdefault(d["device_id"], now)
                        lost = [d for d in listed if d["device_id"].startswith("only-a-") and not d["online"]]
                        if len(movers_back) == agents and len(lost) == stranded and agents_back is not None:
                            break
                        await asyncio.sleep(0.1)
                settled = time.monotonic() - killed
        hub_logs = anomalies([a, b])
    # presence_since of an online record is when B got the hello, stamped before B's presence
    # write (one device at a time): the listing is when B had stored it.
    hello = [(_since(d["presence_since"]) or 0) - killed_wall for d in movers_back]
    back = list(listed_back.values())
    offline = [(_since(d["presence_since"]) or 0) - killed_wall for d in lost]
    return {
        "agents_failing_over": agents,
        "agents_with_only_a": stranded,
        "hub_lost_reasons": sorted({str(d["presence_reason"]) for d in lost}),
        "offline_first_s": round(min(offline), 2),
        "offline_all_s": round(max(offline), 2),
        "hello_median_s": round(statistics.median(hello), 2),
        "hello_all_s": round(max(hello), 2),
        "back_median_s": round(statistics.median(back), 2),
        "back_all_s": round(max(back), 2),
        "agents_connected_again_s": round(agents_back or float("nan"), 2),
        "failing_over_seen_offline_on_b": len({d for d in seen_offline if d.startswith("fo-")}),
        "settled_by_poll_s": round(settled, 2),
        "polls": polls,
        "hub_log": hub_logs,
    }


async def takeover(folder: Path, scale: Scale) -> dict[str, Any]:
    # Quick mode shortens the hub timings so the CI smoke run stays short; full mode: the defaults.
    env = {"MONITOR_HUB_HEARTBEAT": "0.5", "MONITOR_HUB_LOST_AFTER": "2"} if scale.quick else {}
    heartbeat = float(env.get("MONITOR_HUB_HEARTBEAT", 1.0))
    lost_after = float(env.get("MONITOR_HUB_LOST_AFTER", 6.0))
    runs = [await _takeover_run(folder / f"run{n}", scale, env) for n in range(scale.runs)]
    return {
        "hub_heartbeat_s": heartbeat,
        "hub_lost_after_s": lost_after,
        "runs": runs,
        **{
            key: median_of(runs, key)
            for key in (
                "offline_first_s",
                "offline_all_s",
                "hello_median_s",
                "hello_all_s",
                "back_median_s",
                "back_all_s",
                "agents_connected_again_s",
            )
        },
        "hub_lost_reasons": sorted({r for run in runs for r in run["hub_lost_reasons"]}),
    }


# 4. Capacity of two hubs -----------------------------------------------------------------------


def _pg_processes(hubs: Sequence[HubProcess], backends: dict[int, int]) -> list[psutil.Process]:
    """PostgreSQL's own processes (not client backends) and the backends serving ``hubs``."""
    found: list[psutil.Process] = []
    ports = set()
    for hub in hubs:
        with contextlib.suppress(psutil.Error):
            for c in hub.process().net_connections(kind="tcp"):
                if c.raddr and c.raddr.port == 5432:
                    ports.add(c.laddr.port)
    for proc in psutil.process_iter(["name", "username", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.info["username"] != "postgres" or "postgres" not in cmd:
                continue
            if "(" not in cmd or backends.get(proc.pid) in ports:
                found.append(proc)
    return found


async def _backend_ports(url: str) -> dict[int, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL")
        return {int(r["pid"]): int(r["client_port"]) for r in rows}
    finally:
        await conn.close()


def _cpu_of(procs: Sequence[psutil.Process]) -> dict[int, float]:
    out: dict[int, float] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
    return out


async def capacity(folder: Path, scale: Scale) -> dict[str, Any]:
    step: int = scale.pick(100, 2000)
    # 6,000 (a third step) did not connect within 180 s on this machine: the connect storm of
    # the step, not the steady load, is the limit (see bench/notes.md, "Several hubs").
    target: int = scale.pick(100, 4000)
    window: float = scale.pick(1.5, 10.0)
    settle: float = scale.pick(0.5, SAMPLE_INTERVAL)
    me = psutil.Process()
    steps: list[dict[str, Any]] = []
    failure = ""
    async with pg_schema() as url:
        hubs = [pg_hub(folder / "a", url), pg_hub(folder / "b", url)]
        async with running_hubs(hubs):
            procs = [h.process() for h in hubs]
            log.debug("bench: cluster: capacity: hubs started")
            await asyncio.sleep(scale.pick(0.5, 2.0))
            rss_empty = [round(p.memory_info().rss / 2**20, 1) for p in procs]
            fleets: list[Fleet] = []
            tasks: list[asyncio.Task[None]] = []
            try:
                for total in range(step, target + 1, step):
                    for i, hub in enumerate(hubs):
                        fleet = fleet_for(
                            hub,
                            step // 2,
                            interval=SAMPLE_INTERVAL,
                            prefix=f"cap{total // step:02d}{'ab'[i]}-",
                            # 100 connections/s over both hubs: at 250/s a PostgreSQL hub's
                            # welcomes fell behind past the agents' 10 s timeout (see notes)
                            ramp=scale.pick(0.2, step / 100),
                        )
                        fleets.append(fleet)
                        tasks.append(asyncio.get_running_loop().create_task(fleet.run()))
                    try:
                        connect_s = await wait_for(
                            lambda want=total: sum(f.connected() for f in fleets) >= want,  # type: ignore[misc]
                            90,
                            f"{total} agents connected",
                        )
                    except TimeoutError as exc:
                        failure = str(exc)
                        break
                    log.debug("bench: cluster: capacity: %d connected in %.1f s", total, connect_s)
                    await asyncio.sleep(settle)
                    attempts0 = sum(m.transport.attempts for f in fleets for m in f.members)
                    pg = _pg_processes(hubs, await _backend_ports(url))
                    pg0, rows0 = _cpu_of(pg), await stored_samples(url)
                    meters = [CpuMeter(p) for p in [*procs, me]]
                    for meter in meters:
                        meter.start()
                    t0 = time.monotonic()
                    await asyncio.sleep(window)
                    cpu = [meter.stop() for meter in meters]
                    elapsed = time.monotonic() - t0
                    pg1, rows1 = _cpu_of(pg), await stored_samples(url)
                    pg_cpu = sum(pg1[pid] - pg0[pid] for pid in pg1 if pid in pg0)
                    log.debug("bench: cluster: capacity: window done")
                    health = [await h.health() for h in hubs]
                    online = sum(f.connected() for f in fleets)
                    steps.append(
                        {
                            "agents": total,
                            "seconds_to_connect_step": round(connect_s, 1),
                            "hub_sessions": [h["agents_connected"] for h in health],
                            "hub_cpu_percent": cpu[:2],
                            "hub_rss_mib": [round(p.memory_info().rss / 2**20, 1) for p in procs],
                            "postgres_cpu_percent": round(100 * pg_cpu / elapsed, 1),
                            "postgres_processes": len(pg),
                            "load_generator_cpu_percent": cpu[2],
                            "samples_per_second": round((rows1 - rows0) / elapsed),
                            "expected_samples_per_second": round(total / SAMPLE_INTERVAL),
                            "reconnects": sum(m.transport.attempts for f in fleets for m in f.members)
                            - attempts0,
                            "all_online": online == total
                            and sum(h["agents_connected"] for h in health) == total,
                        }
                    )
            finally:
                stopping = time.monotonic()
                for fleet in fleets:
                    fleet.stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                log.info("bench: cluster: capacity: fleets stopped in %.1f s", time.monotonic() - stopping)
        hub_logs = anomalies(hubs)
    held = max((s["agents"] for s in steps if s["all_online"]), default=0)
    return {
        "step": step,
        "target": target,
        "window_seconds": window,
        "sample_interval_s": SAMPLE_INTERVAL,
        "hub_rss_empty_mib": rss_empty,
        "steps": steps,
        "failure": failure,
        "hub_log": hub_logs,
        "held_all_online": held,
    }


# the scenario ----------------------------------------------------------------------------------


async def _timed(name: str, part: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    started = time.monotonic()
    result = await part
    result["seconds"] = round(time.monotonic() - started, 1)
    log.info("bench: cluster: %s done in %.0f s", name, result["seconds"])
    return result


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    push = await _timed("cross-hub push", cross_push(folder / "push", scale))
    ing = await _timed("ingest", ingest(folder / "ingest", scale))
    take = await _timed("takeover", takeover(folder / "takeover", scale))
    cap = await _timed("capacity", capacity(folder / "capacity", scale))
    cross_p99 = push["cross_after_return"]["p99_ms"]
    last = cap["steps"][-1] if cap["steps"] else {}
    return {
        "scenario": "cluster",
        "postgres": PG_URL.split("@")[-1],
        "push": push,
        "ingest": ing,
        "takeover": take,
        "capacity": cap,
        "targets": {
            f"cross-hub push p99 at {push['agents']:,} agents over 2 hubs, REST return -> frame (ms)": {
                "target": "<= 50",
                "achieved": cross_p99,
                "met": cross_p99 <= 50,
            },
            "takeover: every device of the killed hub offline (hub_lost) on the survivor (s)": {
                "target": "<= 10",
                "achieved": take["offline_all_s"],
                "met": take["offline_all_s"] <= 10 and take["hub_lost_reasons"] == ["hub_lost"],
            },
            f"{cap['target']:,} agents (a sample every 5 s) held by 2 hubs, all online": {
                "target": "yes",
                "achieved": cap["held_all_online"] == cap["target"],
                "met": cap["held_all_online"] == cap["target"] and bool(last.get("all_online")),
            },
        },
    }


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "copy":
        print(json.dumps(asyncio.run(raw_copy_main(sys.argv[2], int(sys.argv[3]), *map(int, sys.argv[4:5])))))
    else:
        sys.exit("usage: python -m bench.cluster copy URL ROWS [DEVICES]")
