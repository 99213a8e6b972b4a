"""The dashboard with a big fleet, measured in the browser (headless system Chromium).

Starts a real ``monitor-server`` process, connects N WebSocket agents from this process, logs a
page in and reports:

- connect storm: N agents connecting while the page is open -> all N rows online (page clock);
- snapshot render: page load -> N rows in the table (``performance.now()`` at that moment);
- steady load: every agent sends metrics every ``--interval`` s; requestAnimationFrame intervals
  (p50/p95/max), long tasks (>50 ms) and the fleet view's own flush time per frame;
- presence latency: an agent's socket closes -> its row reads offline (MutationObserver, ms).

    .venv/bin/python bench/dashboard_fleet.py --devices 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TOKEN = "bench-token-8e1f4c2a90"  # noqa: S105 - a throwaway hub started by this script
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# Collects rAF intervals and long tasks until window.__stop is set.
FRAME_PROBE = """() => {
  window.__frames = []; window.__long = [];
  new PerformanceObserver((l) => window.__long.push(...l.getEntries().map((e) => e.duration)))
    .observe({ type: "longtask" });
  let last = performance.now();
  const step = (now) => {
    window.__frames.push(now - last);
    last = now;
    if (!window.__stop) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}"""

WATCH_OFFLINE = """(id) => new Promise((resolve) => {
  const tr = document.querySelector(`#fleet tr[data-device-id="${id}"]`);
  new MutationObserver((_, observer) => {
    if (tr.dataset.online === "false") { observer.disconnect(); resolve(Date.now()); }
  }).observe(tr, { attributes: true, attributeFilter: ["data-online"] });
  window.__watching = true;
})"""

ROWS_AT = """(n) => new Promise((resolve) => {
  const check = () => document.querySelectorAll("#fleet tbody tr").length >= n
    ? resolve(performance.now()) : requestAnimationFrame(check);
  check();
})"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_hub(port: int, folder: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MONITOR_TOKEN": TOKEN,
        "MONITOR_PORT": str(port),
        "MONITOR_DB": str(folder / "monitor.db"),
        "MONITOR_LOG_LEVEL": "warning",
    }
    return subprocess.Popen([sys.executable, "-m", "monitor_server"], env=env)


async def wait_healthy(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(base + "/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("hub did not start")


async def agent(port: int, device_id: str, interval: float) -> ClientConnection:
    """A minimal protocol-v1 agent that reports every ``interval`` s until its socket closes."""
    ws = await connect(
        f"ws://127.0.0.1:{port}/ws/agent",
        additional_headers={"X-Auth-Token": TOKEN},
        compression=None,
        open_timeout=30,
    )
    await ws.send(
        json.dumps(
            {
                "type": "hello",
                "protocol": 1,
                "device_id": device_id,
                "agent_version": "bench",
                "hostname": f"{device_id}.bench",
                "platform": "linux",
                "capabilities": [],
            }
        )
    )
    await ws.recv()
    TASKS.add(asyncio.ensure_future(report_metrics(ws, interval)))
    return ws


TASKS: set[asyncio.Future[None]] = set()


async def report_metrics(ws: ClientConnection, interval: float) -> None:
    """Send metrics and read (and ignore) what the hub sends, so its outbox never fills."""
    reader = asyncio.ensure_future(_drain(ws))
    try:
        await asyncio.sleep(random.random() * interval)  # spread the fleet over the interval
        while True:
            await ws.send(
                json.dumps(
                    {
                        "type": "metrics",
                        "cpu": random.uniform(0, 100),
                        "ram": random.uniform(20, 90),
                        "disk": random.uniform(40, 95),
                    }
                )
            )
            await asyncio.sleep(interval)
    except ConnectionClosed:
        pass
    finally:
        reader.cancel()


async def _drain(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def connect_fleet(port: int, count: int, interval: float) -> list[ClientConnection]:
    sockets: list[ClientConnection] = []
    for start in range(0, count, 100):  # 100 at a time: a storm, but not a SYN flood
        batch = range(start, min(start + 100, count))
        sockets += await asyncio.gather(*(agent(port, f"dev-{n:04d}", interval) for n in batch))
    return sockets


async def log_in(page: Page, base: str) -> None:
    await page.goto(base + "/ui")
    await page.get_by_label("Hub token").fill(TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_function("() => document.querySelector('#link-state').textContent === 'live'")


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(values),
        "p50": round(pick(0.5), 1),
        "p95": round(pick(0.95), 1),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(values), 1),
    }


async def storm(page: Page, port: int, count: int, interval: float) -> tuple[list[ClientConnection], float]:
    started = time.perf_counter()
    sockets = await connect_fleet(port, count, interval)
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#fleet tr[data-online=true]').length >= n",
        arg=count,
        timeout=120_000,
    )
    return sockets, (time.perf_counter() - started) * 1000


async def steady(page: Page, seconds: float) -> dict[str, Any]:
    await page.evaluate("window.monitorDashboard.fleetView.stats.maxFlushMs = 0")
    await page.evaluate(FRAME_PROBE)
    await asyncio.sleep(seconds)
    await page.evaluate("window.__stop = true")
    frames: list[float] = await page.evaluate("window.__frames.slice(1)")
    long_tasks: list[float] = await page.evaluate("window.__long")
    stats = await page.evaluate("window.monitorDashboard.fleetView.stats")
    return {
        "frame_interval_ms": summary(frames),
        "long_tasks": len(long_tasks),
        "longest_task_ms": round(max(long_tasks, default=0), 1),
        "max_flush_ms": round(stats["maxFlushMs"], 1),
    }


async def presence_latency(
    page: Page, port: int, sockets: list[ClientConnection], rounds: int, interval: float
) -> list[float]:
    latencies = []
    for n in range(rounds):
        device_id = f"dev-{n:04d}"
        flipped = asyncio.ensure_future(page.evaluate(WATCH_OFFLINE, device_id))
        await page.wait_for_function("() => window.__watching === true")
        await page.evaluate("window.__watching = false")
        closed_at = time.time() * 1000
        await sockets[n].close()
        latencies.append(await flipped - closed_at)
        sockets[n] = await agent(port, device_id, interval)
        await page.wait_for_function(
            "(id) => document.querySelector(`#fleet tr[data-device-id='${id}']`).dataset.online === 'true'",
            arg=device_id,
        )
    return latencies


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        hub = start_hub(port, Path(folder))
        try:
            await wait_healthy(base)
            return await measure(args, port, base)
        finally:
            hub.terminate()
            hub.wait(10)


async def measure(args: argparse.Namespace, port: int, base: str) -> dict[str, Any]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
        page.on("pageerror", lambda error: print("page error:", error, file=sys.stderr))
        await log_in(page, base)
        sockets, storm_ms = await storm(page, port, args.devices, args.interval)
        await page.reload()
        render_ms = await page.evaluate(ROWS_AT, args.devices)
        load = await steady(page, args.seconds)
        latencies = await presence_latency(page, port, sockets, args.rounds, args.interval)
        for task in TASKS:
            task.cancel()
        await browser.close()
    return {
        "devices": args.devices,
        "metrics_interval_s": args.interval,
        "connect_storm_to_all_rows_online_ms": round(storm_ms),
        "snapshot_render_ms": round(render_ms),
        "steady_load": load,
        "presence_latency_ms": summary(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between metrics per agent")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady-load measuring window")
    parser.add_argument("--rounds", type=int, default=20, help="presence changes timed")
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "dashboard_fleet.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
