"""``monitor-agent simulate``: many virtual agents in one process, over real WebSockets.

Each virtual agent is a real :class:`~monitor_agent.agent.Agent` driven by the real
:class:`~monitor_agent.connection.WsTransport` (hello, reconnect with backoff, spool drain,
commands, acks); only the host is simulated. Its sample source is a cheap random walk and its
spool and journal live in memory, so thousands share one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor_agent import __version__
from monitor_agent.agent import Agent, Identity
from monitor_agent.connection import LinkState, WsSettings, WsTransport
from monitor_agent.journal import MemoryJournal
from monitor_agent.spool import MemorySpool, Sample

log = logging.getLogger("monitor_agent.simulator")

# Loggers that speak once per virtual agent: quiet unless asked, or a storm floods the terminal.
PER_AGENT_LOGGERS = ("monitor_agent.connection", "monitor_agent.agent", "monitor_agent.executor")
STOP_GRACE = 10.0  # seconds the fleet gets to flush and close before its tasks are cancelled

CommandHook = Callable[[str, int, str], None]


@dataclass(frozen=True)
class FleetConfig:
    url: str  # the agent endpoint, ws(s)://host:port/ws/agent
    token: str
    count: int
    interval: float = 5.0
    prefix: str = "sim-"
    ramp: float = 0.0  # seconds over which connection starts are spread
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    jitter: bool = True
    spool_max_samples: int = 1000
    seed: int | None = None

    def device_id(self, index: int) -> str:
        return f"{self.prefix}{index:05d}"


class SyntheticHost:
    """Plausible, slowly wandering metrics for one imaginary machine."""

    def __init__(self, rng: random.Random, clock: Callable[[], float] = time.time) -> None:
        self._rng = rng
        self._clock = clock
        self._booted = clock() - rng.uniform(3600, 90 * 86400)
        self._cpu = rng.uniform(2, 40)
        self._ram = rng.uniform(20, 70)
        self._disk = rng.uniform(10, 85)
        self._mem_total = rng.choice((4, 8, 16, 32, 64)) << 30

    def sample(self) -> Sample:
        rng = self._rng
        self._cpu = _walk(self._cpu, rng.gauss(0, 6), 0.5, 100.0)
        self._ram = _walk(self._ram, rng.gauss(0, 1.5), 5.0, 98.0)
        self._disk = _walk(self._disk, rng.uniform(-0.01, 0.02), 1.0, 99.5)
        load = self._cpu / 25
        return {
            "cpu": round(self._cpu, 1),
            "ram": round(self._ram, 1),
            "disk": round(self._disk, 2),
            "uptime_sec": int(self._clock() - self._booted),
            "mem_total": self._mem_total,
            "mem_used": int(self._mem_total * self._ram / 100),
            "load_1": round(load, 2),
            "net_rx_bps": round(rng.expovariate(1 / 20000), 1),
            "net_tx_bps": round(rng.expovariate(1 / 8000), 1),
            "status": "ok",
            "last_error": "",
        }


def _walk(value: float, step: float, low: float, high: float) -> float:
    return min(high, max(low, value + step))


class _NoJitter(random.Random):
    """Backoff without jitter: every delay is its ceiling, so a fleet retries in lockstep."""

    def uniform(self, a: float, b: float) -> float:
        return b


class VirtualAgent(Agent):
    """An agent that also tells an observer when a command frame arrives (benchmarks use it)."""

    on_command: CommandHook | None = None

    def submit_command(self, command_id: int, command: str, args: Mapping[str, Any] | None) -> None:
        if self.on_command is not None:
            self.on_command(self.identity.device_id, command_id, command)
        super().submit_command(command_id, command, args)


@dataclass
class Member:
    agent: VirtualAgent
    transport: WsTransport
    task: asyncio.Task[Any] | None = None


@dataclass
class Fleet:
    """N virtual agents; ``run`` starts them (spread over ``ramp``) and returns once all stopped."""

    config: FleetConfig
    on_command: CommandHook | None = None
    sample_source: Callable[[int, random.Random], Callable[[], Sample]] | None = None
    members: list[Member] = field(default_factory=list)

    def __post_init__(self) -> None:
        seed = random.Random(self.config.seed)
        for index in range(self.config.count):
            self.members.append(self._member(index, random.Random(seed.getrandbits(64))))
        self._stopping = asyncio.Event()
        self.started_at = 0.0

    def _member(self, index: int, rng: random.Random) -> Member:
        c = self.config
        device_id = c.device_id(index)
        source = (
            self.sample_source(index, rng) if self.sample_source is not None else SyntheticHost(rng).sample
        )
        agent = VirtualAgent(
            identity=Identity(
                device_id=device_id, hostname=device_id, platform="simulated", agent_version=__version__
            ),
            sample_source=source,
            spool=MemorySpool(c.spool_max_samples),
            journal=MemoryJournal(keep=1000),
            interval=c.interval,
        )
        agent.on_command = self.on_command
        transport = WsTransport(
            WsSettings(
                url=c.url,
                token=c.token,
                backoff_base=c.backoff_base,
                backoff_cap=c.backoff_cap,
                auth_retry_delay=max(c.backoff_cap, 1.0),
            ),
            rng=rng if c.jitter else _NoJitter(),
        )
        return Member(agent, transport)

    def connected(self) -> int:
        return sum(1 for m in self.members if m.transport.state is LinkState.CONNECTED)

    def stop(self) -> None:
        """Ask every agent to flush and close (safe from a signal handler)."""
        self._stopping.set()
        for member in self.members:
            member.agent.stop()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = time.monotonic()
        step = self.config.ramp / self.config.count if self.config.count else 0.0
        try:
            for index, member in enumerate(self.members):
                if self._stopping.is_set():
                    break
                member.task = loop.create_task(member.agent.run(member.transport))
                if step > 0:
                    delay = self.started_at + step * (index + 1) - time.monotonic()
                    if delay > 0:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(delay):
                                await self._stopping.wait()
            await self._stopping.wait()
        finally:
            await self._finish()

    async def _finish(self) -> None:
        self.stop()
        tasks = [m.task for m in self.members if m.task is not None]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=STOP_GRACE)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_connected(self, count: int | None = None, poll: float = 0.05) -> None:
        """Return once at least ``count`` agents (default: all) are connected."""
        want = self.config.count if count is None else count
        while True:
            if self.connected() >= want:
                return
            await asyncio.sleep(poll)  # a count over thousands of links: polling is the cheap way


async def report(fleet: Fleet, every: float) -> None:
    """Log how many agents are connected, every ``every`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every)
        up = fleet.connected()
        attempts = sum(m.transport.attempts for m in fleet.members)
        log.info(
            "simulate: %d/%d connected (%.0f s, %d connection attempts)",
            up,
            fleet.config.count,
            time.monotonic() - fleet.started_at,
            attempts,
        )


def tune_gc() -> None:
    """Thousands of agents are millions of long-lived objects: collect less often, and never
    re-scan the ones that exist now. The default thresholds stall the loop for 100+ ms."""
    gc.set_threshold(100_000, 50, 100)
    gc.freeze()


async def simulate(config: FleetConfig, report_every: float = 5.0) -> None:
    """Run the fleet until SIGINT/SIGTERM."""
    fleet = Fleet(config)
    tune_gc()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, fleet.stop)
    log.info(
        "simulate: %d agents (%s00000..) to %s, a sample every %g s, ramp %g s",
        config.count,
        config.prefix,
        config.url,
        config.interval,
        config.ramp,
    )
    reporter = loop.create_task(report(fleet, report_every))
    try:
        await fleet.run()
    finally:
        reporter.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("simulate: stopped (%d still connected)", fleet.connected())


def quiet_agents(level: int) -> None:
    """Per-agent log lines only at ``level`` and above (ERROR by default)."""
    for name in PER_AGENT_LOGGERS:
        logging.getLogger(name).setLevel(level)
