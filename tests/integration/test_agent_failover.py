"""An agent given several hubs (``--server URL1,URL2``): a real agent process and two real hubs.

The agent tries the first URL first; after a failed attempt or a lost connection it tries the
next one (round robin, with its usual backoff), over WebSocket, over ``--transport http`` and
when it enrolls.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.agentd import AgentProcess, device, eventually, free_port, samples
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.integration.test_agent_enrollment import agent_env, enrollment_token, on_credential


@pytest.fixture
async def two_hubs(hub_factory: HubFactory) -> tuple[RunningHub, RunningHub]:
    """Hubs A and B (each with its own database), with a fast keepalive."""
    return (
        await hub_factory(ping_interval=1.0, ping_timeout=1.0),
        await hub_factory(ping_interval=1.0, ping_timeout=1.0),
    )


@pytest.fixture
async def api_b(two_hubs: tuple[RunningHub, RunningHub]) -> AsyncIterator[httpx.AsyncClient]:
    hub_b = two_hubs[1]
    async with httpx.AsyncClient(base_url=hub_b.http_url, headers={"X-Auth-Token": hub_b.token}) as client:
        yield client


def dead_url() -> str:
    """A URL nobody listens on: every connection attempt is refused."""
    return f"http://127.0.0.1:{free_port()}"


def run_agent(
    servers: list[str], state: Path, device_id: str, *args: str, token: str | None = None, **env: str
) -> AgentProcess:
    """``monitor-agent run --server URL1,URL2`` as a process, with fast reconnects."""
    state.mkdir(parents=True, exist_ok=True)
    log_path = state / "agent.log"
    argv = [
        sys.executable,
        "-m",
        "monitor_agent",
        "run",
        "--server",
        ",".join(servers),
        "--state-dir",
        str(state),
        "--device-id",
        device_id,
        "--interval",
        "0.3",
        "--backoff-base",
        "0.1",
        "--backoff-cap",
        "0.5",
        *(["--token", token] if token else []),
        *args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=agent_env(**env))
    return AgentProcess(proc, log_path)


async def logged(agent: AgentProcess, text: str) -> bool:
    return text in agent.log()


async def online(api: httpx.AsyncClient, device_id: str) -> bool:
    entry = await device(api, device_id)
    return bool(entry and entry["online"])


async def stored(api: httpx.AsyncClient, device_id: str, more_than: int = 0) -> int:
    """How many samples ``api``'s hub holds for the device, once there are more than ``more_than``."""
    if await device(api, device_id) is None:
        return 0
    count = len(await samples(api, device_id))
    return count if count > more_than else 0


async def test_a_dead_first_hub_is_skipped_for_the_next(
    two_hubs: tuple[RunningHub, RunningHub], api_b: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Given [dead URL, hub B], the agent connects to B and its samples are stored there."""
    _, hub_b = two_hubs
    dead = dead_url()
    agent = run_agent([dead, hub_b.http_url], tmp_path / "state", "fo-dead", token=hub_b.token)
    try:
        await eventually(lambda: online(api_b, "fo-dead"), what="agent online on hub B")
        await eventually(lambda: stored(api_b, "fo-dead"), what="a sample stored on hub B")
        log = agent.log()
        assert f"connection to {dead.replace('http', 'ws')}/ws/agent failed" in log, log
        assert f"connected to hub ws://127.0.0.1:{hub_b.port}/ws/agent" in log, log
        assert hub_b.token not in log
    finally:
        agent.terminate_all()


async def test_the_agent_moves_to_hub_b_when_hub_a_stops(
    two_hubs: tuple[RunningHub, RunningHub], api_b: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Connected to hub A, which then stops: the agent goes on with hub B (online, samples stored)."""
    hub_a, hub_b = two_hubs
    agent = run_agent([hub_a.http_url, hub_b.http_url], tmp_path / "state", "fo-move", token=hub_a.token)
    try:
        async with httpx.AsyncClient(base_url=hub_a.http_url, headers={"X-Auth-Token": hub_a.token}) as api_a:
            await eventually(lambda: online(api_a, "fo-move"), what="agent online on hub A")
            await eventually(lambda: stored(api_a, "fo-move"), what="a sample stored on hub A")
        assert await device(api_b, "fo-move") is None  # A first: B has not seen it yet
        await hub_a.stop()
        await eventually(lambda: online(api_b, "fo-move"), what="agent online on hub B")
        first = await eventually(lambda: stored(api_b, "fo-move"), what="samples stored on hub B")
        await eventually(lambda: stored(api_b, "fo-move", more_than=first), what="samples keep coming to B")
        log = agent.log()
        assert f"connected to hub ws://127.0.0.1:{hub_a.port}/ws/agent" in log, log
        assert f"connected to hub ws://127.0.0.1:{hub_b.port}/ws/agent" in log, log
        assert hub_a.token not in log
        assert agent.proc.poll() is None
    finally:
        agent.terminate_all()


async def test_http_transport_fails_over_too(
    two_hubs: tuple[RunningHub, RunningHub], api_b: httpx.AsyncClient, tmp_path: Path
) -> None:
    """``--transport http`` with [dead URL, hub B]: the samples are posted to B."""
    _, hub_b = two_hubs
    agent = run_agent(
        [dead_url(), hub_b.http_url], tmp_path / "state", "fo-http", "--transport", "http", token=hub_b.token
    )
    try:
        await eventually(lambda: stored(api_b, "fo-http"), what="a sample posted to hub B")
        # Logged once the whole first cycle (samples, then commands) went through.
        await eventually(lambda: logged(agent, f"using hub http://127.0.0.1:{hub_b.port}"), what="log")
    finally:
        agent.terminate_all()


async def test_enrollment_skips_an_unreachable_hub(
    two_hubs: tuple[RunningHub, RunningHub], api_b: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The first run enrolls at the first hub that answers, then connects on its own credential."""
    _, hub_b = two_hubs
    secret = await enrollment_token(api_b)
    state = tmp_path / "state"
    agent = run_agent([dead_url(), hub_b.http_url], state, "fo-enroll", MONITOR_AGENT_ENROLLMENT_TOKEN=secret)
    try:
        await eventually(lambda: on_credential(hub_b, "fo-enroll"), what="connected to B on its credential")
        assert (state / "credential").exists()
        assert secret not in agent.log()
    finally:
        agent.terminate_all()
