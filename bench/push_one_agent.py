"""Push latency with one connected agent: REST enqueue returning -> command frame at the agent.

Starts a real ``monitor-server`` process on a free port (pinned to core 0 when taskset exists),
connects one websockets client (this process, pinned to core 1), enqueues N commands one at a
time and prints percentiles of (frame arrival - REST return). Negative values mean the frame
arrived before the HTTP response did: the hub pushes before it answers.

    .venv/bin/python bench/push_one_agent.py --count 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

TOKEN = "bench-token-5d0c9b1e27"  # noqa: S105 - a throwaway hub started by this script


def start_hub(port: int, folder: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MONITOR_TOKEN": TOKEN,
        "MONITOR_PORT": str(port),
        "MONITOR_DB": str(folder / "monitor.db"),
        "MONITOR_LOG_LEVEL": "warning",
    }
    cmd = [sys.executable, "-m", "monitor_server"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
        os.sched_setaffinity(0, {1})
    return subprocess.Popen(cmd, env=env)


async def wait_healthy(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(url + "/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("hub did not start")


async def measure(port: int, count: int) -> list[float]:
    base, headers = f"http://127.0.0.1:{port}", {"X-Auth-Token": TOKEN}
    await wait_healthy(base)
    arrivals: dict[int, float] = {}
    arrived = asyncio.Event()
    async with (
        connect(f"ws://127.0.0.1:{port}/ws/agent", additional_headers=headers, compression=None) as ws,
        httpx.AsyncClient(base_url=base, headers=headers) as api,
    ):
        await ws.send(json.dumps({"type": "hello", "protocol": 1, "device_id": "bench-1"}))
        await ws.recv()

        async def reader() -> None:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "command":
                    arrivals[frame["id"]] = time.perf_counter()
                    arrived.set()

        task = asyncio.create_task(reader())
        latencies = []
        for _ in range(count):
            response = await api.post("/devices/bench-1/commands", json={"command": "ping"})
            returned = time.perf_counter()
            cid = response.json()["id"]
            while cid not in arrivals:
                await arrived.wait()
                arrived.clear()
            latencies.append((arrivals[cid] - returned) * 1000)
        task.cancel()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        hub = start_hub(args.port, Path(folder))
        try:
            ms = sorted(asyncio.run(measure(args.port, args.count)))
        finally:
            hub.terminate()
            hub.wait()
    p = statistics.quantiles(ms, n=100)
    print(f"n={len(ms)} return->frame ms: p50={p[49]:.3f} p99={p[98]:.3f} max={ms[-1]:.3f} min={ms[0]:.3f}")


if __name__ == "__main__":
    main()
