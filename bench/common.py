"""What every scenario needs: a real ``monitor-server`` process on its own core, a fleet, stats."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from monitor_agent.simulator import Fleet, FleetConfig

HUB_CORE = 0
LOAD_CORE = 1
BIN = Path(sys.executable).parent
TOKEN = "bench-" + secrets.token_hex(12)


@dataclass(frozen=True)
class Scale:
    """How big a scenario runs: ``quick`` (CI, seconds) or ``full`` (the published figures)."""

    quick: bool
    runs: int

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


def raise_nofile() -> int:
    """Open-files soft limit up to the hard limit (children inherit it); returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cores() -> int:
    return len(os.sched_getaffinity(0))


def pin_load_generator() -> bool:
    """Run this process (the load generator) on LOAD_CORE; False on a one-core machine."""
    if os.cpu_count() and (os.cpu_count() or 1) > LOAD_CORE:
        os.sched_setaffinity(0, {LOAD_CORE})
        return True
    return False


def taskset(core: int) -> list[str]:
    exe = shutil.which("taskset")
    if exe is None or (os.cpu_count() or 1) <= core:
        return []
    return [exe, "-c", str(core)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class HubProcess:
    """``monitor-server`` as a separate process pinned to HUB_CORE, its database in ``folder``."""

    def __init__(self, folder: Path, env: Mapping[str, str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.db = folder / "monitor.db"
        self.log_path = folder / "hub.log"
        self.env = {
            **os.environ,
            "MONITOR_TOKEN": TOKEN,
            "MONITOR_DB": str(self.db),
            "MONITOR_PORT": str(self.port),
            "MONITOR_HOST": "127.0.0.1",
            "MONITOR_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.command = [*taskset(HUB_CORE), str(BIN / "monitor-server")]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/agent"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        await self.wait_healthy()

    async def wait_healthy(self, within: float = 60) -> None:
        async with asyncio.timeout(within), httpx.AsyncClient() as client:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"hub exited; see {self.log_path}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.http_url}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.05)

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            result: dict[str, Any] = (await client.get(f"{self.http_url}/health")).json()
            return result

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_has(self, text: str) -> bool:
        return self.log_path.exists() and text in self.log_path.read_text(errors="replace")


@contextlib.asynccontextmanager
async def running_hub(
    folder: Path, env: Mapping[str, str] | None = None, command: list[str] | None = None
) -> AsyncIterator[HubProcess]:
    """A hub (or ``command``, a server run like one) started in ``folder``, stopped at the end."""
    hub = HubProcess(folder, env)
    if command is not None:
        hub.command = command
    await hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@contextlib.asynccontextmanager
async def running_fleet(fleet: Fleet) -> AsyncIterator[Fleet]:
    task = asyncio.get_running_loop().create_task(fleet.run())
    try:
        yield fleet
    finally:
        fleet.stop()
        await task


def fleet_for(hub: HubProcess, count: int, **options: Any) -> Fleet:
    on_command = options.pop("on_command", None)
    sample_source = options.pop("sample_source", None)
    config = FleetConfig(url=hub.ws_url, token=TOKEN, count=count, seed=1, **options)
    return Fleet(config, on_command=on_command, sample_source=sample_source)


async def wait_for(probe: Callable[[], bool], within: float, what: str, poll: float = 0.05) -> float:
    """Seconds until ``probe()`` is true; raises TimeoutError naming ``what``."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(within):
            while not probe():
                await asyncio.sleep(poll)
    except TimeoutError:
        raise TimeoutError(f"not within {within:g} s: {what}") from None
    return time.monotonic() - start


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds, and the count."""
    if not seconds:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


def median_of(runs: Sequence[Mapping[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else float("nan")


class CpuMeter:
    """CPU% of one process (100 = one core) between ``start()`` and ``stop()``."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self._t0 = 0.0
        self._c0 = 0.0

    def _cpu(self) -> float:
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    def start(self) -> None:
        self._t0, self._c0 = time.monotonic(), self._cpu()

    def stop(self) -> float:
        elapsed = time.monotonic() - self._t0
        return round(100 * (self._cpu() - self._c0) / elapsed, 3) if elapsed > 0 else 0.0
