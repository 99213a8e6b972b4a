"""Scenario: what per-device credentials and Argon2 logins cost (issue 12, before/after).

One real hub process; every comparison is made in the same run, the two sides interleaved
(their order alternates from run to run):

- REST ``POST /ingest`` requests/s, the load of ``bench/ingest.py``'s REST part (32 keep-alive
  clients posting the original agent's payload back to back, one device per client), with the
  legacy fleet token (``X-Auth-Token``: how every agent authenticated until now) vs with each
  device's own credential (``Authorization: Bearer mdc_...``: looked up by its SHA-256 digest,
  then cached for ``MONITOR_AUTH_CACHE_TTL``, 5 s). The devices enroll first, through an
  enrollment token and ``POST /enroll``, as agents do.
- The cold lookup: on one open connection, the first request of a credential not yet cached,
  then the same request again (cached), then the legacy token's; latencies per request.
- ``POST /login`` logins/s with concurrent clients (Argon2id verification in a worker thread),
  with each login's latency; and one client alone (the cost of one verification).
- ``GET /devices`` requests/s with a session cookie vs with the legacy token (the session lookup).

The hub's CPU and the load generator's (this process, on its own core) are recorded per window:
where the load generator is near 100 % of its core, it is the limit, not the hub.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from bench.common import TOKEN, HubProcess, Scale, median_of, running_hub, summary_ms
from bench.ingest import LEGACY_HEADER, ingest_request

CLIENTS = 32  # as bench/ingest.py's REST part
LOGIN_CLIENTS = 8
USER, PASSWORD = "bench-viewer", "bench password " + TOKEN[-8:]
WITHIN_RATIO = 0.9  # credential ingest within 10 % of legacy-token ingest


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    took: list[float] = field(default_factory=list)  # seconds per request, when timed


def _login_request() -> bytes:
    body = orjson.dumps({"name": USER, "password": PASSWORD})
    head = (
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _get_request(path: str, auth: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n\r\n".encode()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    """Send one request on a keep-alive connection and read its whole answer; True for a 200."""
    writer.write(request)
    status = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return b" 200 " in status


async def _client(port: int, request: bytes, until: float, tally: Tally, timed: bool = False) -> None:
    """One keep-alive connection sending ``request`` back to back until ``until``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (started := time.monotonic()) < until:
            ok = await _exchange(reader, writer, request)
            if timed:
                tally.took.append(time.monotonic() - started)
            if ok:
                tally.ok += 1
            else:
                tally.errors += 1
    finally:
        writer.close()


async def _window(
    hub: HubProcess, window: float, clients: Callable[[float, Tally], list[Awaitable[None]]]
) -> tuple[Tally, dict[str, Any]]:
    """Run ``clients`` for ``window`` seconds; their tally, and rate and CPU of hub and load generator."""
    hub_proc, me = hub.process(), psutil.Process()
    tally = Tally()
    hub0, load0 = sum(hub_proc.cpu_times()[:2]), sum(me.cpu_times()[:2])
    started = time.monotonic()
    async with asyncio.timeout(window + 60):
        await asyncio.gather(*clients(started + window, tally))
    elapsed = time.monotonic() - started
    hub1, load1 = sum(hub_proc.cpu_times()[:2]), sum(me.cpu_times()[:2])
    return tally, {
        "requests_per_second": round(tally.ok / elapsed, 1),
        "errors": tally.errors,
        "hub_cpu_percent": round(100 * (hub1 - hub0) / elapsed, 1),
        "load_generator_cpu_percent": round(100 * (load1 - load0) / elapsed, 1),
        "seconds": round(elapsed, 2),
    }


async def _enroll(api: httpx.AsyncClient, devices: list[str]) -> dict[str, str]:
    """Each device's credential, enrolled as an agent does: enrollment token, then ``POST /enroll``."""
    made = await api.post("/enrollment-tokens", json={"expires_in": 3600, "max_uses": len(devices)})
    made.raise_for_status()
    token = made.json()["token"]
    credentials = {}
    for device in devices:
        enrolled = await api.post("/enroll", json={"token": token, "device_id": device})
        enrolled.raise_for_status()
        credentials[device] = enrolled.json()["credential"]
    return credentials


def _order(run: int, pair: tuple[str, str]) -> tuple[str, str]:
    return pair if run % 2 == 0 else (pair[1], pair[0])


async def _ingest(
    hub: HubProcess, credentials: dict[str, str], window: float, runs: int
) -> list[dict[str, Any]]:
    requests = {
        "legacy token": [ingest_request(d, LEGACY_HEADER) for d in credentials],
        "device credential": [
            ingest_request(d, f"Authorization: Bearer {c}") for d, c in credentials.items()
        ],
    }

    def clients(mode: str) -> Callable[[float, Tally], list[Awaitable[None]]]:
        return lambda until, tally: [_client(hub.port, r, until, tally) for r in requests[mode]]

    for mode in requests:  # warm-up: device rows exist, connections and caches are in their steady state
        await _window(hub, min(window, 1.0), clients(mode))
    results = []
    for run in range(runs):
        for mode in _order(run, ("legacy token", "device credential")):
            _, measured = await _window(hub, window, clients(mode))
            results.append({"run": run + 1, "mode": mode, **measured})
    return results


async def _cold(hub: HubProcess, credentials: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per device: a legacy request (untimed), its credential's first request, the same again, legacy."""
    took: dict[str, list[float]] = {"cold": [], "cached": [], "legacy": []}
    for device, credential in credentials.items():
        legacy, own = (
            ingest_request(device, LEGACY_HEADER),
            ingest_request(device, f"Authorization: Bearer {credential}"),
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        try:
            if not await _exchange(reader, writer, legacy):  # the device's row and the connection exist
                raise RuntimeError(f"{device}: legacy ingest refused")
            for label, request in (("cold", own), ("cached", own), ("legacy", legacy)):
                started = time.perf_counter()
                if not await _exchange(reader, writer, request):
                    raise RuntimeError(f"{device}: {label} ingest refused")
                took[label].append(time.perf_counter() - started)
        finally:
            writer.close()
    return {label: summary_ms(values) for label, values in took.items()}


async def _logins(
    hub: HubProcess, window: float, runs: int, alone: int
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    request = _login_request()
    single = Tally()
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        for _ in range(alone):  # one client alone: one Argon2id verification plus the session's write
            started = time.perf_counter()
            if not await _exchange(reader, writer, request):
                raise RuntimeError("login refused")
            single.took.append(time.perf_counter() - started)
    finally:
        writer.close()
    results = []
    for run in range(runs):
        tally, measured = await _window(
            hub,
            window,
            lambda until, tally: [
                _client(hub.port, request, until, tally, timed=True) for _ in range(LOGIN_CLIENTS)
            ],
        )
        results.append({"run": run + 1, **measured, **summary_ms(tally.took)})
    return results, summary_ms(single.took)


async def _devices(hub: HubProcess, cookie: str, window: float, runs: int) -> list[dict[str, Any]]:
    requests = {
        "legacy token": _get_request("/devices", LEGACY_HEADER),
        "session cookie": _get_request("/devices", f"Cookie: monitor_session={cookie}"),
    }

    def clients(mode: str) -> Callable[[float, Tally], list[Awaitable[None]]]:
        return lambda until, tally: [_client(hub.port, requests[mode], until, tally) for _ in range(CLIENTS)]

    for mode in requests:
        await _window(hub, min(window, 1.0), clients(mode))
    results = []
    for run in range(runs):
        for mode in _order(run, ("legacy token", "session cookie")):
            _, measured = await _window(hub, window, clients(mode))
            results.append({"run": run + 1, "mode": mode, **measured})
    return results


def _paired(runs: list[dict[str, Any]], base: str, other: str, count: int) -> list[float]:
    """Per run, ``other``'s rate over ``base``'s (the two windows of a run are back to back)."""
    rate = {(r["run"], r["mode"]): float(r["requests_per_second"]) for r in runs}
    return [round(rate[(n, other)] / rate[(n, base)], 3) for n in range(1, count + 1)]


def _medians(runs: list[dict[str, Any]], mode: str) -> dict[str, float]:
    chosen = [r for r in runs if r["mode"] == mode]
    keys = ("requests_per_second", "hub_cpu_percent", "load_generator_cpu_percent")
    return {key: median_of(chosen, key) for key in keys}


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    window = scale.pick(1.0, 10.0)
    login_window = scale.pick(2.0, 10.0)
    cold_devices = scale.pick(3, 50)
    alone = scale.pick(2, 10)
    async with (
        running_hub(folder) as hub,
        httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}, timeout=60) as api,
    ):
        credentials = await _enroll(api, [f"idc-{n:03d}" for n in range(CLIENTS)])
        cold_credentials = await _enroll(api, [f"idc-cold-{n:03d}" for n in range(cold_devices)])
        ingest_runs = await _ingest(hub, credentials, window, scale.runs)
        cold = await _cold(hub, cold_credentials)
        (
            await api.post("/users", json={"name": USER, "password": PASSWORD, "role": "viewer"})
        ).raise_for_status()
        login_runs, login_alone = await _logins(hub, login_window, scale.runs, alone)
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=60) as browser:
            (await browser.post("/login", json={"name": USER, "password": PASSWORD})).raise_for_status()
            cookie = browser.cookies["monitor_session"]
        devices_runs = await _devices(hub, cookie, window, scale.runs)
        listed = len((await api.get("/devices")).json())
    legacy, credential = _medians(ingest_runs, "legacy token"), _medians(ingest_runs, "device credential")
    token_get, cookie_get = _medians(devices_runs, "legacy token"), _medians(devices_runs, "session cookie")
    ingest_ratios = _paired(ingest_runs, "legacy token", "device credential", scale.runs)
    devices_ratios = _paired(devices_runs, "legacy token", "session cookie", scale.runs)
    ratio = round(statistics.median(ingest_ratios), 3)
    return {
        "scenario": "identity",
        "clients": CLIENTS,
        "login_clients": LOGIN_CLIENTS,
        "window_seconds": window,
        "login_window_seconds": login_window,
        "devices_listed": listed,
        "ingest_runs": ingest_runs,
        "ingest": {
            "legacy token": legacy,
            "device credential": credential,
            "ratio": ratio,
            "ratio_per_run": ingest_ratios,
        },
        "cold_lookup": {"devices": cold_devices, **cold},
        "login_runs": login_runs,
        "login": {
            key: median_of(login_runs, key)
            for key in (
                "requests_per_second",
                "p50_ms",
                "p99_ms",
                "max_ms",
                "hub_cpu_percent",
                "load_generator_cpu_percent",
            )
        },
        "login_alone": login_alone,
        "devices_runs": devices_runs,
        "devices": {
            "legacy token": token_get,
            "session cookie": cookie_get,
            "ratio": round(statistics.median(devices_ratios), 3),
            "ratio_per_run": devices_ratios,
        },
        "targets": {
            "REST /ingest req/s, device credential / legacy token": {
                "target": f">= {WITHIN_RATIO:.0%}",
                "achieved": f"{ratio:.1%} (runs: {', '.join(f'{r:.1%}' for r in ingest_ratios)})",
                "met": ratio >= WITHIN_RATIO,
            }
        },
    }
