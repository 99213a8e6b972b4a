"""The agent as an operator runs it: a real process, SIGTERM, and the restart command."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from monitor_server.agent_socket import AgentSocket as AgentConnection
from tests.agentd import acked, command, device, enqueue, eventually, spawn_agent
from tests.hubs import RunningHub
from tests.timing import t


async def _online(api: httpx.AsyncClient, device_id: str) -> bool:
    entry = await device(api, device_id)
    return bool(entry and entry["online"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _journal_runs(state_dir: Path, command_id: int) -> int:
    text = (state_dir / "journal.jsonl").read_text()
    return text.count(f'"id":{command_id},"state":"running"')


async def test_sigterm_exits_cleanly_with_close_code_1000(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM: the hub sees close code 1000, the device goes offline, the process exits 0."""
    codes: list[int | None] = []
    original = AgentConnection._offline_reason

    def spy(self: AgentConnection, code: int | None) -> str:
        codes.append(code)
        return original(self, code)

    monkeypatch.setattr(AgentConnection, "_offline_reason", spy)
    agent = spawn_agent(hub, tmp_path / "state", "--device-id", "proc-term", "--interval", "0.5")
    try:
        await eventually(lambda: _online(api, "proc-term"), what="agent online")
        agent.proc.send_signal(signal.SIGTERM)
        await eventually(_async(lambda: agent.proc.poll() is not None), within=5, what="exit")
        assert agent.proc.returncode == 0, agent.log()
        await eventually(_async(lambda: bool(codes)), what="hub saw the close")
        assert codes == [1000]
        entry = await device(api, "proc-term")
        assert entry is not None and not entry["online"]
        assert entry["offline_reason"] == "disconnected"
    finally:
        agent.terminate_all()


def _async(check):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return bool(check())

    return probe


async def test_restart_spawn_mode_gives_a_new_pid_and_acks_once(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """restart (spawn): a new process (new pid) reconnects; the command ran and was acked once."""
    state = tmp_path / "state"
    agent = spawn_agent(
        hub, state, "--device-id", "proc-spawn", "--interval", "0.5", "--restart-mode", "spawn"
    )
    try:
        await eventually(lambda: _online(api, "proc-spawn"), what="agent online")
        first_pid = agent.proc.pid
        cid = await enqueue(api, "proc-spawn", "restart")
        done = await eventually(lambda: acked(api, "proc-spawn", cid), what="restart acked")
        assert done["success"] is True
        await eventually(_async(lambda: agent.proc.poll() is not None), what="old process exit")
        assert agent.proc.returncode == 0
        pids = await eventually(
            _async_value(lambda: _two_pids(agent.started_pids())), what="a second process started"
        )
        assert pids[0] == first_pid and pids[1] != first_pid and _alive(pids[1])
        await eventually(lambda: _reconnected(api, "proc-spawn"), what="new process connected")
        assert _journal_runs(state, cid) == 1
        assert (await command(api, "proc-spawn", cid))["acked_at"] == done["acked_at"]
    finally:
        agent.terminate_all()


async def test_restart_exec_mode_replaces_the_image_and_acks_once(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """restart (exec, the default): a fresh image in the same pid reconnects; run and acked once."""
    state = tmp_path / "state"
    agent = spawn_agent(hub, state, "--device-id", "proc-exec", "--interval", "0.5")
    try:
        await eventually(lambda: _online(api, "proc-exec"), what="agent online")
        cid = await enqueue(api, "proc-exec", "restart")
        done = await eventually(lambda: acked(api, "proc-exec", cid), what="restart acked")
        assert done["success"] is True
        await eventually(_async(lambda: len(agent.started_pids()) == 2), what="second start")
        assert agent.started_pids() == [agent.proc.pid, agent.proc.pid]
        await eventually(lambda: _reconnected(api, "proc-exec"), what="re-executed agent connected")
        assert agent.proc.poll() is None
        assert _journal_runs(state, cid) == 1
        assert "restarting" in agent.log()
    finally:
        agent.terminate_all()


def _two_pids(pids: list[int]) -> list[int]:
    return pids if len(pids) >= 2 else []


def _async_value(make):  # type: ignore[no-untyped-def]
    async def probe():  # type: ignore[no-untyped-def]
        return make()

    return probe


async def _reconnected(api: httpx.AsyncClient, device_id: str) -> bool:
    events = (await api.get(f"/devices/{device_id}/events")).json()["events"]
    onlines = [e for e in events if e["online"]]
    return len(onlines) >= 2 and bool((await device(api, device_id) or {}).get("online"))


def test_python_dash_m_and_console_script_agree() -> None:
    """`python -m monitor_agent --help` works and lists the run command."""
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "monitor_agent", "--help"],
        capture_output=True,
        text=True,
        timeout=t(20),
        check=True,
    ).stdout
    assert "run" in out and "monitor-agent" in out
