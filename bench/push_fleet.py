"""Light agents and the push commander in one process: ``python -m bench.push_fleet URL HTTP_URL ...``.

The push scenario's headline fleet. ``bench/push.py`` at 10,000 agents on the agent's own
``Agent`` + ``WsTransport`` code had its load generator (one Python process on core 1) use 64 %
of that core with its event loop late by 105 ms at p99 and 347 ms at worst: the arrival times
were taken in that loop, so the push p99 measured the generator. Here each connection speaks the
real protocol from pre-built frames: ``hello`` with the capabilities a real agent announces (its
built-in commands and ``stored_acks``), a one-sample ``metrics`` frame numbered with ``seq``
every ``interval`` (a real agent samples every 5 s; with nothing to send it sends a
``heartbeat`` within the welcome's ``heartbeat_interval``), pings at the welcome's
``ping_interval`` (as the agent does; websockets answers the hub's), and for each ``command``
the time it arrived, then the ``ack`` a real agent sends for ``ping`` (``success``, ``pong``).

The commander lives here too (httpx, one keep-alive connection): it posts 10 commands/s to
random agents, so the request's send time and the frame's arrival share one clock
(``time.perf_counter``) and one uncrowded event loop (uvloop, pinned to the load core by the
caller). Per window it reports its own CPU, the hub's CPU and its loop's lateness (a 10 ms
ticker), so the report can say which side was the limit. Output: JSON lines on stdout, an
``online`` event once every connection was welcomed, then ``result``.

With ``--hold`` it posts nothing: its agents hold their connections and send their samples until
stdin closes (``bench/push.py`` runs the fleet's bulk that way, beside a small commanded one).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
from typing import Any

import httpx
import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.common import CpuMeter, summary_ms
from bench.live_load import LightAgent
from monitor_agent import __version__
from monitor_agent.handlers import BUILTINS
from protocol.codes import Capability

RATE = 10.0  # commands per second over REST, as the issue asks
ARRIVAL_LIMIT = 30.0  # seconds after its request a command still counts as arriving
CONNECTS_PER_SECOND = 500  # as bench/push.py ramps the real fleet (``ramp=agents / 500``)
CONNECTING_AT_ONCE = 100  # handshakes in flight at most while the fleet connects
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 60.0  # the agent's reconnect backoff (FleetConfig's defaults)
HEARTBEAT = orjson.dumps({"type": "heartbeat"}).decode()


class Arrivals:
    """Arrival times by command id (``time.perf_counter``), and how many acks went back."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.acks = 0
        self.errors: list[str] = []
        self.reconnects = 0
        self.ended: dict[str, int] = {}  # why connections ended (or failed to open) -> how many

    def note(self, why: str) -> None:
        self.ended[why] = self.ended.get(why, 0) + 1


class LightPushAgent:
    """One connection: hello, a sample per interval (or a heartbeat), ack each command it gets."""

    def __init__(self, device_id: str, interval: float, rng: random.Random, arrivals: Arrivals) -> None:
        self.device_id = device_id
        self.interval = interval
        self.rng = rng
        self.frames = LightAgent(device_id, 1, rng)  # pre-built one-sample ``metrics`` frames with ``seq``
        self.arrivals = arrivals
        self.open = False

    def hello(self) -> str:
        return orjson.dumps(
            {
                "type": "hello",
                "protocol": 1,
                "device_id": self.device_id,
                "agent_version": __version__,
                "hostname": self.device_id,
                "platform": "simulated",
                "capabilities": [*BUILTINS, Capability.STORED_ACKS.value],
            }
        ).decode()

    async def run(self, url: str, token: str, gate: asyncio.Semaphore, welcomed: list[int]) -> None:
        """Connect, serve until the socket ends, and connect again after a jittered backoff
        (1 s doubling to 60 s, as the agent's): commands pushed meanwhile arrive on the next
        connection, and their latency counts the gap."""
        backoff, first = BACKOFF_FIRST, True
        while True:
            try:
                async with gate:
                    ws = await connect(
                        url,
                        additional_headers={"X-Auth-Token": token},
                        compression=None,
                        ping_interval=None,
                        max_size=None,
                        user_agent_header=f"monitor-agent/{__version__}",
                    )
                    await ws.send(self.hello())
                    welcome = orjson.loads(await ws.recv())
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.arrivals.note("connect failed: " + type(exc).__name__)
                await asyncio.sleep(backoff * self.rng.uniform(0.5, 1.5))
                backoff = min(backoff * 2, BACKOFF_CAP)
                continue
            if welcome.get("type") != "welcome":  # e.g. the hub still holds the last connection
                self.arrivals.note(f"refused: {welcome.get('code')}")
                await ws.close()
                await asyncio.sleep(float(welcome.get("retry_after") or backoff) * self.rng.uniform(0.5, 1.5))
                backoff = min(backoff * 2, BACKOFF_CAP)
                continue
            if welcome["ping_interval"] > 0:  # the agent pings the hub with the welcome's timings
                ws.ping_interval = welcome["ping_interval"]
                ws.ping_timeout = welcome["ping_timeout"]
                ws.start_keepalive()
            self.open, backoff = True, BACKOFF_FIRST
            if first:
                welcomed[0] += 1
                first = False
            else:
                self.arrivals.reconnects += 1
            sender = asyncio.get_running_loop().create_task(
                self._send(ws, float(welcome["heartbeat_interval"]))
            )
            why = ""
            try:
                await self._read(ws)
            except ConnectionClosed as exc:
                why = str(exc)
            finally:
                self.open = False
                sender.cancel()
            self.arrivals.note(why or f"closed {ws.close_code} {ws.close_reason}")
            await ws.close()
            await asyncio.sleep(backoff * self.rng.uniform(0.5, 1.5))

    async def _send(self, ws: ClientConnection, heartbeat: float) -> None:
        tick = min(self.interval, heartbeat)
        last_sample = time.monotonic() - self.rng.uniform(0, self.interval)  # agents sample out of phase
        await asyncio.sleep(self.rng.uniform(0, tick))
        while True:
            now = time.monotonic()
            if now - last_sample >= self.interval:
                last_sample = now
                self.frames._ts = time.time() - 0.001  # a sample taken now, as an agent's is
                await ws.send(self.frames.frame())
            else:
                await ws.send(HEARTBEAT)
            await asyncio.sleep(tick)

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            now = time.perf_counter()
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "command":
                command_id = int(frame["id"])
                self.arrivals.at.setdefault(command_id, now)
                success, message = (True, "pong") if frame["command"] == "ping" else (False, "not run")
                await ws.send(
                    orjson.dumps(
                        {"type": "ack", "id": command_id, "success": success, "message": message}
                    ).decode()
                )
                self.arrivals.acks += 1
            elif kind == "error":
                self.arrivals.errors.append(f"{self.device_id}: {frame}")


async def _ticker(late: list[float]) -> None:
    """How late this event loop wakes a 10 ms sleep: what a timestamp taken here can be off by."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.01)
        late.append(time.perf_counter() - t - 0.01)


async def _window(
    client: httpx.AsyncClient,
    fleet: list[LightPushAgent],
    arrivals: Arrivals,
    seconds: float,
    rng: random.Random,
    hub: psutil.Process,
    late: list[float],
) -> dict[str, Any]:
    posted: list[tuple[int, float, float]] = []
    timed_out = 0
    hub_cpu, own_cpu = CpuMeter(hub), CpuMeter(psutil.Process())
    hub_cpu.start()
    own_cpu.start()
    late.clear()
    start = time.perf_counter()
    for n in range(int(seconds * RATE)):
        await asyncio.sleep(max(0.0, start + n / RATE - time.perf_counter()))
        device_id = rng.choice(fleet).device_id
        sent = time.perf_counter()
        try:
            try:
                response = await client.post(f"/devices/{device_id}/commands", json={"command": "ping"})
            except (httpx.ReadError, httpx.RemoteProtocolError):  # a kept-alive connection the hub closed
                sent = time.perf_counter()
                response = await client.post(f"/devices/{device_id}/commands", json={"command": "ping"})
        except httpx.TimeoutException:  # the hub did not answer within 30 s: counted, not fatal
            timed_out += 1
            continue
        returned = time.perf_counter()
        response.raise_for_status()
        posted.append((int(response.json()["id"]), sent, returned))
    hub_percent, own_percent = hub_cpu.stop(), own_cpu.stop()
    lateness = summary_ms(late)
    ended_before = sum(arrivals.ended.values())
    deadline = time.monotonic() + ARRIVAL_LIMIT
    while time.monotonic() < deadline and not all(cid in arrivals.at for cid, _, _ in posted):
        await asyncio.sleep(0.05)
    # A command that has not arrived by then counts as ARRIVAL_LIMIT (a floor), and is counted.
    at = {cid: arrivals.at.get(cid, sent + ARRIVAL_LIMIT) for cid, sent, _ in posted}
    return {
        "from_request": summary_ms([at[cid] - sent for cid, sent, _ in posted]),
        "after_return": summary_ms([max(0.0, at[cid] - returned) for cid, _, returned in posted]),
        "arrived_before_return": sum(1 for cid, _, returned in posted if at[cid] <= returned),
        "not_arrived": sum(1 for cid, _, _ in posted if cid not in arrivals.at),
        "posts_timed_out": timed_out,
        "connections_ended": sum(arrivals.ended.values()) - ended_before,
        "hub_cpu_percent": hub_percent,
        "generator_cpu_percent": own_percent,
        "generator_late_p99_ms": lateness["p99_ms"],
        "generator_late_max_ms": lateness["max_ms"],
    }


async def _windows(
    args: argparse.Namespace,
    fleet: list[LightPushAgent],
    arrivals: Arrivals,
    hub: psutil.Process,
    late: list[float],
) -> list[dict[str, Any]]:
    window_rng = random.Random(args.seed + 1)
    async with httpx.AsyncClient(
        base_url=args.http_url, headers={"X-Auth-Token": args.token}, timeout=30
    ) as client:
        return [
            await _window(client, fleet, arrivals, args.seconds, window_rng, hub, late)
            for _ in range(args.runs)
        ]


async def _hold(hub: psutil.Process, late: list[float]) -> dict[str, Any]:
    """The background fleet: hold the connections, post nothing, until stdin closes."""
    hub_cpu, own_cpu = CpuMeter(hub), CpuMeter(psutil.Process())
    hub_cpu.start()
    own_cpu.start()
    late.clear()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    lateness = summary_ms(late)
    return {
        "hub_cpu_percent": hub_cpu.stop(),
        "generator_cpu_percent": own_cpu.stop(),
        "generator_late_p99_ms": lateness["p99_ms"],
        "generator_late_max_ms": lateness["max_ms"],
    }


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


async def main(args: argparse.Namespace) -> None:
    arrivals = Arrivals()
    rng = random.Random(args.seed)
    fleet = [
        LightPushAgent(f"{args.prefix}{i:05d}", args.interval, random.Random(rng.getrandbits(64)), arrivals)
        for i in range(args.agents)
    ]
    gate, welcomed = asyncio.Semaphore(CONNECTING_AT_ONCE), [0]
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    tasks = []
    for n, agent in enumerate(fleet):  # the real fleet's ramp: 500 connections a second
        await asyncio.sleep(max(0.0, started + n / CONNECTS_PER_SECOND - time.monotonic()))
        tasks.append(loop.create_task(agent.run(args.url, args.token, gate, welcomed)))
    async with asyncio.timeout(300):
        while welcomed[0] < args.agents:
            failed = [t for t in tasks if t.done()]
            if failed:
                failed[0].result()  # raises what stopped it
                raise RuntimeError("a connection ended before the fleet was online")
            await asyncio.sleep(0.05)
    connect_seconds = time.monotonic() - started
    gc.collect()
    gc.freeze()  # the fleet's objects are long-lived: no collection scans them again
    _emit({"event": "online", "connect_seconds": round(connect_seconds, 2)})
    late: list[float] = []
    ticker = loop.create_task(_ticker(late))
    hub = psutil.Process(args.hub_pid)
    if args.hold:
        windows = [await _hold(hub, late)]
    else:
        windows = await _windows(args, fleet, arrivals, hub, late)
    ticker.cancel()
    online_at_end = sum(1 for a in fleet if a.open)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    _emit(
        {
            "event": "result",
            "connect_seconds": round(connect_seconds, 2),
            "online_at_end": online_at_end,
            "windows": windows,
            "acks_sent": arrivals.acks,
            "reconnects": arrivals.reconnects,
            "connections_ended": arrivals.ended,
            "hub_errors": arrivals.errors[:5],
        }
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.push_fleet", description=__doc__)
    parser.add_argument("url", help="the hub's ws://.../ws/agent")
    parser.add_argument("http_url", help="the hub's http://host:port, for the commander")
    parser.add_argument("token")
    parser.add_argument("hub_pid", type=int, help="whose CPU is measured per window")
    parser.add_argument("agents", type=int)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one window")
    parser.add_argument("--runs", type=int, default=3, help="windows")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between an agent's samples")
    parser.add_argument("--prefix", default="light-")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--hold",
        action="store_true",
        help="the background fleet: post no commands, hold the connections until stdin closes",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    import uvloop

    from bench.common import raise_nofile

    raise_nofile()
    uvloop.run(main(parse()))
