"""Scenario 4, presence: clean close -> offline event at a dashboard; SIGSTOPped agent -> offline.

The subscriber is a real dashboard connection: it logs in at ``/ui/login`` with the token (as a
browser does), takes the session cookie, and reads ``/ws/ui`` events. The stopped agent is a real
``monitor-agent run`` process, frozen with SIGSTOP at a random phase of its heartbeat and ping
cycle (20 agents side by side), against a hub with default timings; min / median / max reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    BIN,
    LOAD_CORE,
    TOKEN,
    HubProcess,
    Scale,
    fleet_for,
    median_of,
    running_fleet,
    running_hub,
    summary_ms,
    taskset,
    wait_for,
)


class Dashboard:
    """A logged-in ``/ws/ui`` subscriber that timestamps every presence event as it arrives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.offline: dict[str, float] = {}
        self.online: dict[str, float] = {}

    async def read(self) -> None:
        async for raw in self.ws:
            now = time.perf_counter()
            frame = orjson.loads(raw)
            for event in frame.get("events", []) if frame.get("type") == "events" else []:
                if event.get("type") == "presence":
                    target = self.online if event["online"] else self.offline
                    target[event["device_id"]] = now


@contextlib.asynccontextmanager
async def dashboard(hub: HubProcess) -> AsyncIterator[Dashboard]:
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        response = await client.post("/ui/login", data={"token": TOKEN}, headers={"Origin": hub.http_url})
        cookie = response.cookies.get("monitor_session") or client.cookies.get("monitor_session")
        if not cookie:
            raise RuntimeError(f"dashboard login failed: HTTP {response.status_code}")
    url = f"ws://127.0.0.1:{hub.port}/ws/ui"
    async with connect(
        url,
        additional_headers={"Cookie": f"monitor_session={cookie}", "Origin": hub.http_url},
        max_size=None,
    ) as ws:
        board = Dashboard(ws)
        reader = asyncio.get_running_loop().create_task(board.read())
        try:
            yield board
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def _clean_close(folder: Path, closes: int) -> list[float]:
    """Stop one agent at a time; seconds from ``stop()`` to its offline event at the dashboard."""
    latencies: list[float] = []
    async with running_hub(folder) as hub, dashboard(hub) as board:
        fleet = fleet_for(hub, closes + 5, prefix="close-")
        async with running_fleet(fleet):
            await wait_for(lambda: fleet.connected() == fleet.config.count, 60, "agents online")
            for member in random.Random(3).sample(fleet.members, closes):
                device = member.agent.identity.device_id
                await asyncio.sleep(0.05)
                started = time.perf_counter()
                member.agent.stop()
                await wait_for(lambda d=device: d in board.offline, 10, f"{device} offline event")  # type: ignore[misc]
                latencies.append(board.offline[device] - started)
    return latencies


def _agent_process(hub: HubProcess, device: str, state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *taskset(LOAD_CORE),
            str(BIN / "monitor-agent"),
            "run",
            "--server",
            hub.http_url,
            "--token",
            TOKEN,
            "--device-id",
            device,
            "--state-dir",
            str(state),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )


async def _sigstop(folder: Path, agents: int, seed: int = 11) -> list[dict[str, float]]:
    """Real agent processes, each frozen at a random phase of its heartbeat and ping cycle.

    All run side by side; each is SIGSTOPped a random 0-10 s after the dashboard saw it online
    (two 5 s heartbeat / ping periods, so every phase of the cycle is drawn), and timed until the
    dashboard hears it is offline.
    """
    rng = random.Random(seed)
    phases = [rng.uniform(0.0, 10.0) for _ in range(agents)]
    async with running_hub(folder) as hub, dashboard(hub) as board:

        async def one(n: int) -> dict[str, float]:
            device = f"frozen-{n}"
            proc = _agent_process(hub, device, folder / device)
            try:
                await wait_for(lambda: device in board.online, 60, f"{device} online")
                await asyncio.sleep(max(0.0, board.online[device] + phases[n] - time.perf_counter()))
                started = time.perf_counter()
                os.kill(proc.pid, signal.SIGSTOP)
                await wait_for(lambda: device in board.offline, 60, f"{device} offline")
                return {"phase_s": round(phases[n], 2), "offline_after_s": board.offline[device] - started}
            finally:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)

        return list(await asyncio.gather(*(one(n) for n in range(agents))))


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    closes = scale.pick(5, 50)
    runs = [summary_ms(await _clean_close(folder / f"close{n}", closes)) for n in range(scale.runs)]
    frozen_runs = await _sigstop(folder / "sigstop", scale.pick(2, 20))
    frozen = [f["offline_after_s"] for f in frozen_runs]
    p99 = median_of(runs, "p99_ms")
    worst_frozen = round(max(frozen), 2)
    return {
        "scenario": "presence",
        "subscriber": "/ws/ui (logged-in dashboard socket)",
        "closes_per_run": closes,
        "clean_close_runs": runs,
        "clean_close": {k: median_of(runs, k) for k in ("p50_ms", "p99_ms", "max_ms")},
        "sigstop_seconds": [round(s, 2) for s in frozen],
        "sigstop_phases_seconds": [f["phase_s"] for f in frozen_runs],
        "sigstop_min_seconds": round(min(frozen), 2),
        "sigstop_median_seconds": round(statistics.median(frozen), 2),
        "sigstop_max_seconds": worst_frozen,
        "targets": {
            "clean close -> offline at the dashboard, p99 (ms)": {
                "target": "<= 1000",
                "achieved": p99,
                "met": p99 <= 1000,
            },
            "SIGSTOPped agent (random phase) offline, worst of all (s)": {
                "target": "<= 10",
                "achieved": worst_frozen,
                "met": worst_frozen <= 10,
            },
        },
    }
