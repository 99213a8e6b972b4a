"""Real agents for integration tests: in-process (same event loop as the hub) or as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from monitor_agent.agent import Agent, ExitReason, Identity, Transport
from monitor_agent.collector import Collector
from monitor_agent.config import HostCommand
from monitor_agent.connection import WsSettings, WsTransport
from monitor_agent.http_transport import HttpSettings, HttpTransport
from monitor_agent.journal import FileJournal
from monitor_agent.spool import SqliteSpool
from tests.timing import t

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], within: float = 10, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy, for up to ``within`` (scaled) seconds."""
    last: Any = None
    try:
        async with asyncio.timeout(t(within)):
            while True:
                last = await probe()
                if last:
                    return last
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not reached within {t(within):g}s: {what} (last: {last!r})") from None


@dataclass
class LocalAgent:
    agent: Agent
    transport: Any
    task: asyncio.Task[ExitReason]
    state_dir: Path

    async def stop(self) -> ExitReason:
        self.agent.stop()
        async with asyncio.timeout(t(10)):
            reason = await self.task
        self.agent.close()
        return reason


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ws_transport(url: str, token: str, **overrides: Any) -> WsTransport:
    settings = {"backoff_base": 0.05, "backoff_cap": 0.3, "connect_timeout": t(5), **overrides}
    return WsTransport(WsSettings(url=url, token=token, **settings))


def http_transport(url: str, token: str, **overrides: Any) -> HttpTransport:
    settings = {"backoff_base": 0.05, "backoff_cap": 0.3, "poll_interval": 0.2, **overrides}
    return HttpTransport(HttpSettings(base_url=url, token=token, **settings))


def start_local_agent(
    state_dir: Path,
    transport: Transport,
    *,
    device_id: str,
    interval: float = 0.2,
    host_commands: Mapping[str, HostCommand] | None = None,
    instance_id: str = "",
) -> LocalAgent:
    """A real agent (real collector, spool and journal files) in this event loop."""
    agent = Agent(
        identity=Identity(device_id, "test-host", "linux", "test", instance_id),
        sample_source=Collector().sample,
        spool=SqliteSpool(state_dir / "spool.sqlite3", 10_000),
        journal=FileJournal(state_dir / "journal.jsonl"),
        interval=interval,
        host_commands=host_commands,
    )
    task = asyncio.get_running_loop().create_task(agent.run(transport))
    return LocalAgent(agent, transport, task, state_dir)


@dataclass
class AgentProcess:
    """``python -m monitor_agent`` with its log in a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    extra_pids: list[int] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def started_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"started: pid (\d+)", self.log())]

    def terminate_all(self) -> None:
        for pid in {self.proc.pid, *self.started_pids()}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


class _Reachable(Protocol):
    @property
    def http_url(self) -> str: ...
    @property
    def token(self) -> str: ...


def spawn_agent(hub: _Reachable, state_dir: Path, *args: str, token: str | None = None) -> AgentProcess:
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "agent.log"
    argv = [
        sys.executable,
        "-m",
        "monitor_agent",
        "--server",
        hub.http_url,
        "--token",
        token or hub.token,
        "--state-dir",
        str(state_dir),
        "--backoff-base",
        "0.1",
        "--backoff-cap",
        "0.5",
        *args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    return AgentProcess(proc, log_path)


async def device(api: httpx.AsyncClient, device_id: str) -> dict[str, Any] | None:
    for entry in (await api.get("/devices")).json():
        if entry["device_id"] == device_id:
            return dict(entry)
    return None


async def samples(api: httpx.AsyncClient, device_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/devices/{device_id}/metrics", params={"limit": 10000})
    response.raise_for_status()
    return list(response.json()["samples"])


async def command(api: httpx.AsyncClient, device_id: str, command_id: int) -> dict[str, Any]:
    response = await api.get(f"/devices/{device_id}/commands/{command_id}")
    response.raise_for_status()
    return dict(response.json())


async def acked(api: httpx.AsyncClient, device_id: str, command_id: int) -> dict[str, Any]:
    """The stored command once it is acked, else an empty dict (for ``eventually``)."""
    found = await command(api, device_id, command_id)
    return found if found["status"] == "acked" else {}


async def enqueue(
    api: httpx.AsyncClient, device_id: str, name: str, args: dict[str, Any] | None = None
) -> int:
    response = await api.post(f"/devices/{device_id}/commands", json={"command": name, "args": args})
    response.raise_for_status()
    return int(response.json()["id"])
