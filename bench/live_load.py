"""Light WebSocket load for ingest: ``python -m bench.live_load URL TOKEN AGENTS PER_FRAME SECONDS``.

Each connection says hello like an agent, then sends ``metrics`` frames of one sample
(``PER_FRAME`` 1: what a connected agent sends, one frame per sample it takes) or
``metrics_batch`` frames of ``PER_FRAME`` samples (a spool replay), numbered with ``seq`` so the
hub answers ``stored`` after each commit. A connection keeps at most ``WINDOW`` frames unstored
(as the agent's window does) and otherwise sends as fast as the hub takes them: every agent
sends one sample per interval, and the interval is as short as the hub allows.

Frames are pre-built strings with only ``seq`` and ``ts`` filled in, so this process spends its
core on the socket, not on drawing metrics; it runs in its own process (uvloop) pinned to the load
core, and prints JSON with its own CPU time so the report can say when it is the limit. Warm-up
is excluded: the window starts ``WARMUP`` seconds after every connection got its welcome.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from monitor_agent import __version__
from monitor_agent.simulator import SyntheticHost
from protocol.codes import Capability

WARMUP = 3.0


def window_for(per_frame: int) -> int:
    """Frames unstored per connection: the agent's window is 4 batches of 500 samples."""
    return 4 if per_frame > 1 else 8


class LightAgent:
    def __init__(self, device_id: str, per_frame: int, rng: random.Random) -> None:
        self.device_id = device_id
        self.per_frame = per_frame
        self.window = window_for(per_frame)
        host = SyntheticHost(rng)
        self._bodies: list[bytes] = []
        for _ in range(16):
            sample = {
                **host.sample(),
                "hostname": device_id,
                "agent_version": __version__,
                "spool_dropped": 0,
            }
            self._bodies.append(orjson.dumps(sample)[1:-1])  # the fields, without braces
        self._next_seq = 0
        self._stored = -1
        self._ts = time.time() - 86_400 * 2 + rng.random()
        self._progress = asyncio.Event()
        self.sent = 0

    def _sample(self, n: int) -> str:
        self._ts += 0.001
        return f'{{{self._bodies[n % 16].decode()},"ts":{self._ts:.6f}}}'

    def frame(self) -> str:
        seq = self._next_seq
        if self.per_frame == 1:
            body = self._bodies[seq % 16].decode()
            self._ts += 0.001
            text = f'{{"type":"metrics","seq":{seq},{body},"ts":{self._ts:.6f}}}'
        else:
            samples = ",".join(self._sample(seq + i) for i in range(self.per_frame))
            text = f'{{"type":"metrics_batch","seq":{seq},"samples":[{samples}]}}'
        self._next_seq += self.per_frame
        return text

    def in_flight_frames(self) -> int:
        return (self._next_seq - 1 - self._stored) // self.per_frame

    async def run(
        self, url: str, token: str, welcomed: asyncio.Event, count: list[int], stop: asyncio.Event
    ) -> None:
        hello = {
            "type": "hello",
            "protocol": 1,
            "device_id": self.device_id,
            "agent_version": __version__,
            "hostname": self.device_id,
            "platform": "simulated",
            "capabilities": [Capability.STORED_ACKS.value],
        }
        async with connect(
            url,
            additional_headers={"X-Auth-Token": token},
            compression=None,
            ping_interval=None,
            max_size=None,
        ) as ws:
            await ws.send(orjson.dumps(hello).decode())
            welcome = orjson.loads(await ws.recv())
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"{self.device_id}: no welcome: {welcome}")
            count[0] += 1
            if count[0] == count[1]:
                welcomed.set()
            reader = asyncio.get_running_loop().create_task(self._read(ws))
            try:
                await welcomed.wait()
                while not stop.is_set():
                    while self.in_flight_frames() >= self.window:
                        self._progress.clear()
                        await self._progress.wait()
                    await ws.send(self.frame())
                    self.sent += self.per_frame
                    await asyncio.sleep(0)  # one frame per agent per turn: agents take turns
            finally:
                reader.cancel()

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("type") == "stored":
                self._stored = max(self._stored, int(frame["seq"]))
                self._progress.set()
            elif frame.get("type") == "error":
                raise RuntimeError(f"{self.device_id}: hub error {frame}")


def _cpu() -> float:
    import os

    t = os.times()
    return t.user + t.system


async def main(
    url: str, token: str, agents: int, per_frame: int, seconds: float, prefix: str
) -> dict[str, Any]:
    welcomed, stop = asyncio.Event(), asyncio.Event()
    count = [0, agents]
    rng = random.Random(7)
    fleet = [
        LightAgent(f"{prefix}{i:05d}", per_frame, random.Random(rng.getrandbits(64))) for i in range(agents)
    ]
    tasks = [asyncio.get_running_loop().create_task(a.run(url, token, welcomed, count, stop)) for a in fleet]
    async with asyncio.timeout(120):
        await welcomed.wait()
    window = await timed_window(fleet, tasks, stop, seconds, WARMUP)
    return {"event": "result", "agents": agents, "samples_per_frame": per_frame, **window}


async def timed_window(
    fleet: list[LightAgent],
    tasks: list[asyncio.Task[None]],
    stop: asyncio.Event,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """After ``warmup``, one window of ``seconds`` (marked on stdout for the hub's CPU meter): the
    samples sent per second and this process's CPU; then the fleet is stopped."""
    await asyncio.sleep(warmup)
    sent0, t0, cpu0 = sum(a.sent for a in fleet), time.monotonic(), _cpu()
    print(json.dumps({"event": "window_start", "at": time.time()}), flush=True)
    await asyncio.sleep(seconds)
    sent1, t1, cpu1 = sum(a.sent for a in fleet), time.monotonic(), _cpu()
    print(json.dumps({"event": "window_end", "at": time.time()}), flush=True)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "samples_sent_per_second": round((sent1 - sent0) / (t1 - t0)),
        "load_generator_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "seconds": round(t1 - t0, 2),
    }


if __name__ == "__main__":
    import uvloop

    from bench.common import raise_nofile

    raise_nofile()
    url, token, agents, per_frame, seconds = sys.argv[1:6]
    prefix = sys.argv[6] if len(sys.argv) > 6 else "live-"
    out = uvloop.run(main(url, token, int(agents), int(per_frame), float(seconds), prefix))
    print(json.dumps(out), flush=True)
