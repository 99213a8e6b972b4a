"""Scenario alerts_ingest: what 100 alert rules over 10,000 devices cost the hub's ingest, end to end.

Issue 14: "with 100 rules over 10,000 devices the ingest rate must stay within 10% of the rate
without rules". ``bench/alerts.py`` times the evaluator alone, in one process; this times the
whole hub (frames, evaluation, transitions stored, notifications queued and posted, dashboards'
bus) under the load of ``bench/ingest.py``.

The fleet: 10,000 devices made once per invocation in a template database (each first seen
through the original agent's REST ``/ingest``, then tagged by an operator with
``PATCH /devices/{id}``: ``group-<n % 10>``, ``site-<n % 4>``), so every window starts from the same
10,000 known, tagged devices. Each window copies that database into a fresh folder and starts a
fresh ``monitor-server`` on core 0 (as ``bench/ingest.py`` does: a window that follows another on
the same hub pays for what it left). With rules, a webhook notifier (a receiver in this process)
and the 100 rules of ``rules()`` are created over REST before the load starts.

The load is ``bench/live_load.py``'s agents (``LightAgent``) in their own process on core 1
(``_generate``, this module run as a script: they connect in waves and each starts sending at its
own welcome): live single-sample ``metrics`` frames from every device (``LIVE_AGENTS``; a smaller
scale leaves the rest known, covered by the rules and offline), and ``metrics_batch`` frames of
500 from 16 agents. Conditions are interleaved (no rules / rules, then rules / no rules, ...),
each window measured on the generator's own window (after its warm-up; the live window's halves
too), and the ratios are taken per pair of windows and as ratios of medians. Batched windows come
in two pairs per run (no rules / rules / rules / no rules, then the other way round), so a drift
in this machine's speed over a run falls on both conditions alike. The target: samples/s stored
with rules at least 90 % of without, per load; hub CPU per sample is reported beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import LOAD_CORE, TOKEN, HubProcess, Scale, median_of, running_hub, taskset
from bench.ingest import BATCH, _bound, ingest_request

DEVICES = 10_000
LIVE_AGENTS = 10_000
BATCH_AGENTS = 16
PREFIX = "dev-"
CLIENTS = 32  # keep-alive HTTP connections that make the template fleet
# Seconds; its halves are reported too (the first still sees connections settle). Two of the hub's
# 30 s roll-up periods: the connect phase takes 28-53 s here, so where a window falls in that schedule
# varies, and a window of 30 s moved by 2x from window to window under the same code (issue 14).
LIVE_WINDOW = 60.0
BATCH_WINDOW = 20.0
WARMUP = 10.0  # seconds after every connection was welcomed, before the window starts
# Seconds from the hub being ready to the load starting, rules or not: the hub folds the samples
# stored into the history tiers every 30 s from its start (``monitor_server/retention.py``), a pass
# that costs its core for seconds under this load, so both conditions' windows must sit at the same
# point of that schedule. Creating the rules takes about 1.3 s here; a load started as soon as they
# were made put the rules' windows 1.3 s later in it than the others' (more of the pass inside).
SETUP = 4.0
WAVE, WAVE_PAUSE = 500, 0.25  # the live agents connect 500 at a time, a quarter second apart
CONNECT_TRIES = 10  # then the window goes on without that agent (``agents_never_connected``)
TARGET = 0.90  # rate with rules / rate without, at least
RESULT_KEYS = ("samples_per_second", "hub_cpu_percent", "hub_us_per_sample", "load_generator_cpu_percent")


def device_id(n: int) -> str:
    """The generator names its agents ``<prefix><n:05d>``: the same ids as the template's devices."""
    return f"{PREFIX}{n:05d}"


def device_tags(n: int) -> list[str]:
    return [f"group-{n % 10}", f"site-{n % 4}"]


# The rules

# Per field, thresholds from "a few devices of the bench fleet cross it" to "none does" (the fleet's
# samples are bench/live_load.py's: cpu wanders over about 30 points per device, ram over 8, disk is
# nearly constant, about 5 % of devices above 80), each with a clear value below (hysteresis).
TIERS: tuple[tuple[str, str, float, float], ...] = (
    ("cpu", ">", 95, 80),
    ("cpu", ">", 90, 70),
    ("cpu", ">", 80, 60),
    ("cpu", ">", 70, 50),
    ("ram", ">", 95, 90),
    ("ram", ">", 90, 85),
    ("ram", ">", 75, 70),
    ("ram", ">", 70, 60),
    ("disk", ">", 95, 90),
    ("disk", ">", 90, 85),
    ("disk", ">", 85, 80),
    ("disk", ">", 80, 75),
    ("load_1", ">", 4, 3),
    ("load_1", ">", 2.5, 2),
    ("net_rx_bps", ">", 1_000_000, 500_000),
    ("net_rx_bps", ">", 120_000, 80_000),
    ("net_tx_bps", ">", 50_000, 30_000),
    ("mem_used", ">", 48e9, 40e9),
    ("uptime_sec", "<", 3600, 7200),
)
FOR_SECONDS = (0, 0, 10, 30, 60, 300)
# Offline rules: (for, tag or every device). Their ``for`` is 0 or longer than the time from the
# rules' creation to a window's end (connect, warm-up, window: under 90 s), so the devices offline
# in a window (those the load leaves out) fire before it or stay pending through it: a burst of
# thousands of states firing at once never lands inside one window and not in another.
OFFLINE_RULES: tuple[tuple[float, str | None], ...] = (
    (0, "group-7"),
    (120, None),
    (300, None),
    (600, "site-0"),
    (900, "site-1"),
    (120, "group-3"),
)


def _number(value: float) -> str:
    """1000000, 2.5, 48000000000: a rule's name allows no ``+`` (``1e+06``)."""
    return format(value, "f").rstrip("0").rstrip(".")


def rules(devices: int) -> list[dict[str, Any]]:
    """100 rules: 92 thresholds on the seed's fields and the richer ones (half selecting a tag, four
    a list of devices, the rest every device), 2 status rules, 6 offline rules."""
    out: list[dict[str, Any]] = []
    for n in range(92):
        metric, op, value, clear = TIERS[n % len(TIERS)]
        selector: dict[str, list[str]] = {}
        if n % 2:
            selector = {"tags": [f"group-{n % 10}" if n % 4 == 1 else f"site-{n % 4}"]}
        elif n % 23 == 0:
            selector = {"devices": [device_id(k) for k in range(n % 7, devices, max(1, devices // 50))]}
        out.append(
            {
                "name": f"{metric} {'above' if op == '>' else 'below'} {_number(value)} r{n}",
                "kind": "threshold",
                "metric": metric,
                "op": op,
                "value": value,
                "clear_value": clear,
                "for": FOR_SECONDS[n % len(FOR_SECONDS)],
                "severity": "critical" if n % 3 == 0 else "warning",
                "selector": selector,
            }
        )
    out += [
        {"name": "agent reports errors", "kind": "status", "for": 0, "severity": "warning"},
        {"name": "agent errors at site 0", "kind": "status", "for": 60, "selector": {"tags": ["site-0"]}},
    ]
    for n, (wait, tag) in enumerate(OFFLINE_RULES):
        out.append(
            {
                "name": f"offline {wait}s r{n}",
                "kind": "offline",
                "for": wait,
                "severity": "critical",
                "selector": {"tags": [tag]} if tag else {},
            }
        )
    return out


# Raw keep-alive HTTP (the template's 20,000 requests: httpx would take the load core longer)


def _request(method: str, path: str, body: bytes) -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _http_worker(port: int, requests: Iterator[bytes], failures: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            if b" 200 " not in status and b" 201 " not in status:
                failures.append(f"{status.decode().strip()} {body[:200]!r}")
    finally:
        writer.close()


async def _send_all(port: int, requests: list[bytes]) -> None:
    shared = iter(requests)  # the workers take the next request from one iterator
    failures: list[str] = []
    await asyncio.gather(*(_http_worker(port, shared, failures) for _ in range(CLIENTS)))
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(requests)} requests failed, first: {failures[0]}")


async def _template(folder: Path, devices: int) -> tuple[Path, dict[str, float]]:
    """A database holding ``devices`` known devices with their tags; seconds each step took."""
    timings: dict[str, float] = {}
    # HTTP devices stay online for MONITOR_HTTP_OFFLINE_AFTER (30 s), and across a restart within it:
    # 1 s here, and the template ends with every device offline, so that no window's hub starts with
    # 10,000 HTTP-online devices to sweep offline under its load.
    async with running_hub(folder, {"MONITOR_HTTP_OFFLINE_AFTER": "1"}) as hub:
        started = time.monotonic()
        await _send_all(hub.port, [ingest_request(device_id(n)) for n in range(devices)])
        timings["create_seconds"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        tags = [
            _request("PATCH", f"/devices/{device_id(n)}", orjson.dumps({"tags": device_tags(n)}))
            for n in range(devices)
        ]
        await _send_all(hub.port, tags)
        timings["tag_seconds"] = round(time.monotonic() - started, 1)
        async with httpx.AsyncClient(timeout=60) as client:
            listed = (await client.get(f"{hub.http_url}/devices", headers={"X-Auth-Token": TOKEN})).json()
        known = listed["devices"] if isinstance(listed, dict) else listed
        if len(known) != devices:
            raise RuntimeError(f"template: {len(known)} devices, {devices} expected")
        started = time.monotonic()
        async with asyncio.timeout(180):
            while (await hub.health())["devices_online"]:
                await asyncio.sleep(0.5)
        timings["offline_seconds"] = round(time.monotonic() - started, 1)
    return hub.db, timings


def _copy_db(template: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copyfile(source, folder / (template.name + suffix))


# A webhook receiver (Alertmanager format): counts what the hub sends


class Receiver:
    def __init__(self) -> None:
        self.posts = 0
        self.alerts: dict[str, int] = {"firing": 0, "resolved": 0}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def reset(self) -> None:
        self.posts = 0
        self.alerts = {"firing": 0, "resolved": 0}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            while await reader.readline():
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = orjson.loads(await reader.readexactly(length))
                self.posts += 1
                for alert in body.get("alerts", ()):
                    self.alerts[alert["status"]] = self.alerts.get(alert["status"], 0) + 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        self._writers.discard(writer)
        writer.close()

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()  # the hub's keep-alive connections: their handlers end with them
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _add_rules(hub: HubProcess, receiver: Receiver, devices: int) -> None:
    async with httpx.AsyncClient(
        base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}, timeout=60
    ) as client:
        notifier = {"name": "bench", "kind": "webhook", "url": f"http://127.0.0.1:{receiver.port}/alerts"}
        for path, body in [("/notifiers", notifier), *(("/alert-rules", rule) for rule in rules(devices))]:
            answer = await client.post(path, json=body)
            if answer.status_code != 201:
                raise RuntimeError(f"POST {path} {body}: {answer.status_code} {answer.text}")


async def _alerts_now(hub: HubProcess) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=60) as client:
        found = (await client.get(f"{hub.http_url}/alerts", headers={"X-Auth-Token": TOKEN})).json()
    listed = found["alerts"] if isinstance(found, dict) else found
    counts = {"pending": 0, "firing": 0}
    for alert in listed:
        counts[alert["state"]] = counts.get(alert["state"], 0) + 1
    return counts


# One window of load


async def _window(
    hub: HubProcess, agents: int, per_frame: int, window: float, warmup: float
) -> dict[str, Any]:
    """``bench/live_load.py``'s agents (through ``_generate``: connected in waves) against ``hub``;
    the hub's rows and CPU over the generator's own window (as ``bench.ingest._light_window``)."""
    from bench.ingest import _rows

    command = [
        *taskset(LOAD_CORE),
        sys.executable,
        "-m",
        "bench.alerts_ingest",
        hub.ws_url,
        TOKEN,
        str(agents),
        str(per_frame),
        str(window),
        PREFIX,
        str(warmup),
    ]
    proc = hub.process()
    loop = asyncio.get_running_loop()

    async def mark() -> tuple[int, float, float]:
        rows = await loop.run_in_executor(None, _rows, hub.db)
        return rows, time.monotonic(), sum(proc.cpu_times()[:2])

    async def middle() -> None:
        await asyncio.sleep(window / 2)
        marks["middle"] = await mark()

    gen = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    assert gen.stdout is not None
    marks: dict[str, tuple[int, float, float]] = {}
    result: dict[str, Any] = {}
    connect_started = time.monotonic()
    connected_after = 0.0
    halves: asyncio.Task[None] | None = None
    async with asyncio.timeout(window + warmup + 300):
        while line := await gen.stdout.readline():
            event = json.loads(line)
            if event["event"] in ("window_start", "window_end"):
                marks[event["event"]] = await mark()
                if event["event"] == "window_start":
                    connected_after = marks["window_start"][1] - connect_started - warmup
                    halves = loop.create_task(middle())
            else:
                result = event
        if await gen.wait() != 0 or "window_start" not in marks or "window_end" not in marks:
            raise RuntimeError(f"the load generator failed: {command}")
    if halves is not None:
        await halves

    def span(start: str, end: str) -> dict[str, Any]:
        (rows0, t0, cpu0), (rows1, t1, cpu1) = marks[start], marks[end]
        rows, seconds, cpu = rows1 - rows0, t1 - t0, cpu1 - cpu0
        return {
            "samples_per_second": round(rows / seconds),
            "hub_cpu_percent": round(100 * cpu / seconds, 1),
            "hub_us_per_sample": round(1e6 * cpu / rows, 2) if rows else None,
            "rows": rows,
            "seconds": round(seconds, 2),
        }

    return {
        "agents": agents,
        "samples_per_frame": per_frame,
        **span("window_start", "window_end"),
        "first_half": span("window_start", "middle") if "middle" in marks else None,
        "second_half": span("middle", "window_end") if "middle" in marks else None,
        "load_generator_cpu_percent": result.get("load_generator_cpu_percent"),
        "samples_sent_per_second": result.get("samples_sent_per_second"),
        "connect_retries": result.get("connect_retries"),
        "agents_lost": result.get("agents_lost"),
        "agents_never_connected": result.get("agents_never_connected"),
        "seconds_to_connect": round(connected_after, 1),
    }


async def _measure(
    folder: Path,
    template: Path,
    receiver: Receiver,
    with_rules: bool,
    agents: int,
    per_frame: int,
    devices: int,
    window: float,
    warmup: float,
    setup: float,
) -> dict[str, Any]:
    _copy_db(template, folder)
    receiver.reset()
    load_average = round(os.getloadavg()[0], 2)
    async with running_hub(folder) as hub:
        ready = time.monotonic()
        if with_rules:
            await _add_rules(hub, receiver, devices)
        took = time.monotonic() - ready
        await asyncio.sleep(max(0.0, setup - took))  # the load starts ``setup`` s after the hub
        result = await _window(hub, agents, per_frame, window, warmup)
        result["setup_seconds"] = round(took, 2)  # over ``setup``: this window started later
        result["rules"] = len(rules(devices)) if with_rules else 0
        result["load_average"] = load_average
        if with_rules:
            result["alerts_at_end"] = await _alerts_now(hub)
            result["notifications"] = {"posts": receiver.posts, **receiver.alerts}
        result["hub_rss_mib"] = round(hub.process().memory_info().rss / 2**20, 1)
    return result


def _summary(plain: list[dict[str, Any]], ruled: list[dict[str, Any]]) -> dict[str, Any]:
    rate0, rate1 = median_of(plain, "samples_per_second"), median_of(ruled, "samples_per_second")
    us0, us1 = median_of(plain, "hub_us_per_sample"), median_of(ruled, "hub_us_per_sample")
    per_run = [
        round(b["samples_per_second"] / a["samples_per_second"], 3)
        for a, b in zip(plain, ruled, strict=True)
        if a["samples_per_second"]
    ]
    cpu_per_run = [
        round(b["hub_us_per_sample"] / a["hub_us_per_sample"], 3)
        for a, b in zip(plain, ruled, strict=True)
        if a.get("hub_us_per_sample") and b.get("hub_us_per_sample")
    ]
    return {
        "without_rules": {key: median_of(plain, key) for key in RESULT_KEYS} | {"bound_by": _bound(plain)},
        "with_rules": {key: median_of(ruled, key) for key in RESULT_KEYS} | {"bound_by": _bound(ruled)},
        "rate_ratio": round(rate1 / rate0, 3) if rate0 else float("nan"),
        "rate_ratio_per_run": per_run,
        "rate_ratio_median_of_runs": round(statistics.median(per_run), 3) if per_run else float("nan"),
        "cpu_per_sample_ratio": round(us1 / us0, 3) if us0 else float("nan"),
        "cpu_per_sample_ratio_per_run": cpu_per_run,
        "cpu_per_sample_ratio_median_of_runs": (
            round(statistics.median(cpu_per_run), 3) if cpu_per_run else float("nan")
        ),
        "second_half": _halves(plain, ruled, "second_half"),
        "seconds_to_connect": [
            median_of(plain, "seconds_to_connect"),
            median_of(ruled, "seconds_to_connect"),
        ],
    }


def _halves(plain: list[dict[str, Any]], ruled: list[dict[str, Any]], half: str) -> dict[str, Any] | None:
    """The same ratios over the window's second half only (after the connections' settling)."""
    a = [w[half] for w in plain if w.get(half)]
    b = [w[half] for w in ruled if w.get(half)]
    if not a or not b:
        return None
    rate0, rate1 = median_of(a, "samples_per_second"), median_of(b, "samples_per_second")
    us0, us1 = median_of(a, "hub_us_per_sample"), median_of(b, "hub_us_per_sample")
    return {
        "samples_per_second": [rate0, rate1],
        "hub_us_per_sample": [us0, us1],
        "rate_ratio": round(rate1 / rate0, 3) if rate0 else float("nan"),
        "cpu_per_sample_ratio": round(us1 / us0, 3) if us0 else float("nan"),
    }


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    devices = scale.pick(300, DEVICES)
    live_agents = scale.pick(50, LIVE_AGENTS)
    windows = {"live": scale.pick(1.0, LIVE_WINDOW), "batched": scale.pick(1.0, BATCH_WINDOW)}
    warmup = scale.pick(0.5, WARMUP)
    setup = scale.pick(0.0, SETUP)
    template, timings = await _template(folder / "template", devices)
    receiver = Receiver()
    await receiver.start()
    loads = {"live": (live_agents, 1), "batched": (BATCH_AGENTS, BATCH)}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {k: {"without": [], "with": []} for k in loads}
    order: list[tuple[int, str, bool]] = []
    try:
        for n in range(scale.runs):
            pair = (False, True) if n % 2 == 0 else (True, False)
            for load in loads if n % 2 == 0 else reversed(list(loads)):
                # Batched windows are short and this machine's speed drifts: two pairs per run,
                # the second in the opposite order (ABBA), so a drift falls on both conditions.
                conditions = pair + pair[::-1] if load == "batched" else pair
                for with_rules in conditions:
                    agents, per_frame = loads[load]
                    result = await _measure(
                        folder / f"run{n}-{load}-{'rules' if with_rules else 'none'}",
                        template,
                        receiver,
                        with_rules,
                        agents,
                        per_frame,
                        devices,
                        windows[load],
                        warmup,
                        setup,
                    )
                    result["order"] = len(order) + 1
                    order.append((n, load, with_rules))
                    runs[load]["with" if with_rules else "without"].append(result)
    finally:
        await receiver.stop()
    summaries = {load: _summary(r["without"], r["with"]) for load, r in runs.items()}
    live, batched = summaries["live"], summaries["batched"]
    return {
        "scenario": "alerts_ingest",
        "devices": devices,
        "rules": len(rules(devices)),
        "rule_kinds": {
            kind: sum(1 for r in rules(devices) if r["kind"] == kind)
            for kind in ("threshold", "status", "offline")
        },
        "rules_by_tag": sum(1 for r in rules(devices) if r.get("selector", {}).get("tags")),
        "rules_by_device_list": sum(1 for r in rules(devices) if r.get("selector", {}).get("devices")),
        "live_agents": live_agents,
        "batch_agents": BATCH_AGENTS,
        "window_seconds": windows,
        "warmup_seconds": warmup,
        "setup_seconds": setup,
        "template": timings,
        "runs": runs,
        "summary": summaries,
        "targets": {
            f"live frames ({live_agents:,} agents): samples/s with 100 rules / without": {
                "target": f">= {TARGET:.0%}",
                "achieved": f"{live['rate_ratio']:.1%} (per pair: "
                + ", ".join(f"{x:.0%}" for x in live["rate_ratio_per_run"])
                + ")",
                "met": live["rate_ratio"] >= TARGET,
            },
            f"batches of {BATCH} ({BATCH_AGENTS} agents): samples/s with 100 rules / without": {
                "target": f">= {TARGET:.0%}",
                "achieved": f"{batched['rate_ratio']:.1%} (per pair: "
                + ", ".join(f"{x:.0%}" for x in batched["rate_ratio_per_run"])
                + ")",
                "met": batched["rate_ratio"] >= TARGET,
            },
        },
    }


async def _generate(
    url: str, token: str, agents: int, per_frame: int, seconds: float, prefix: str, warmup: float
) -> dict[str, Any]:
    """``bench.live_load.main`` with its agents (``LightAgent``) connecting in waves of ``WAVE``, and
    an agent whose connection fails before its welcome trying again: 10,000 handshakes at once
    overflow the hub's accept queue and, on a loaded machine, a handshake times out, which would
    lose the whole window. Prints the same events and result."""
    from bench.live_load import LightAgent, timed_window

    stop = asyncio.Event()
    rng = random.Random(7)  # the same agents, ids and samples as bench/live_load.py's
    fleet = [
        LightAgent(f"{prefix}{i:05d}", per_frame, random.Random(rng.getrandbits(64))) for i in range(agents)
    ]
    # Each agent its own "everyone welcomed" event: it starts sending at its own welcome, as an
    # agent does (waiting for the whole fleet, the first waves would sit silent past the hub's idle
    # timeout, 15 s).
    welcomed = [asyncio.Event() for _ in fleet]
    retries, lost, unconnected = [0], [0], [0]

    async def agent(a: LightAgent, mine: asyncio.Event) -> None:
        for attempt in range(CONNECT_TRIES):
            try:
                await a.run(url, token, mine, [0, 1], stop)
                return
            except Exception as exc:
                if stop.is_set():
                    return
                if mine.is_set():  # after its welcome: the window goes on without it (counted)
                    lost[0] += 1
                    return
                # Before its welcome (refused, handshake timed out, the hub's hello_timeout): again,
                # then without it (counted).
                if attempt == CONNECT_TRIES - 1:
                    print(f"{a.device_id}: no connection: {exc!r}", file=sys.stderr, flush=True)
                    unconnected[0] += 1
                    mine.set()
                    return
                retries[0] += 1
                await asyncio.sleep(1.0 + random.random())

    loop = asyncio.get_running_loop()
    tasks = []
    for n, (a, mine) in enumerate(zip(fleet, welcomed, strict=True)):
        tasks.append(loop.create_task(agent(a, mine)))
        if n % WAVE == WAVE - 1:
            await asyncio.sleep(WAVE_PAUSE)
    async with asyncio.timeout(300):
        for mine in welcomed:
            await mine.wait()
    window = await timed_window(fleet, tasks, stop, seconds, warmup)
    return {
        "event": "result",
        "agents": agents,
        "samples_per_frame": per_frame,
        **window,
        "connect_retries": retries[0],
        "agents_lost": lost[0],
        "agents_never_connected": unconnected[0],
    }


if __name__ == "__main__":
    # The load generator of one window (see ``_generate``).
    import uvloop

    from bench.common import raise_nofile

    raise_nofile()
    url, token, agents, per_frame, seconds, prefix, warmup = sys.argv[1:8]
    out = uvloop.run(
        _generate(url, token, int(agents), int(per_frame), float(seconds), prefix, float(warmup))
    )
    print(json.dumps(out), flush=True)
