"""The agent as a real process with a device credential: enrollment, and rotation under kill -9.

``monitor-agent enroll`` and the first ``run`` with an enrollment token (by environment or file,
never argv) keep the credential in ``<state>/credential`` (0600) and present it from then on.
A rotation interrupted by SIGKILL at any step leaves the agent a credential the hub accepts.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor_agent.credential import CredentialStore
from monitor_server.identity.principals import PrincipalKind
from protocol.errors import Conflict
from tests.agentd import AgentProcess, eventually, spawn_agent
from tests.hubs import RunningHub
from tests.integration.test_credential_lifecycle import credential_state, live_socket, works
from tests.timing import t


async def enrollment_token(api: httpx.AsyncClient, uses: int = 1) -> str:
    made = await api.post("/enrollment-tokens", json={"expires_in": 600, "max_uses": uses})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def agent_env(**extra: str) -> dict[str, str]:
    """The test's environment without any token, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if "TOKEN" not in k}
    return {**env, **extra}


def run_agent(hub: RunningHub, state: Path, device_id: str, *args: str, **env: str) -> AgentProcess:
    """``monitor-agent run`` with no ``--token``: it presents its kept credential (or enrolls)."""
    import subprocess

    state.mkdir(parents=True, exist_ok=True)
    log_path = state / "agent.log"
    argv = [
        sys.executable,
        "-m",
        "monitor_agent",
        "run",
        "--server",
        hub.http_url,
        "--state-dir",
        str(state),
        "--device-id",
        device_id,
        "--backoff-base",
        "0.1",
        "--backoff-cap",
        "0.5",
        "--interval",
        "0.5",
        *args,
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=agent_env(**env))
    return AgentProcess(proc, log_path)


async def enroll_command(hub: RunningHub, state: Path, device_id: str, **env: str) -> tuple[int, str]:
    """``monitor-agent enroll`` (in a subprocess: the hub answers from this event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor_agent",
        "enroll",
        "--server",
        hub.http_url,
        "--state-dir",
        str(state),
        "--device-id",
        device_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=agent_env(**env),
    )
    async with asyncio.timeout(t(20)):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def on_credential(hub: RunningHub, device_id: str) -> bool:
    """The device is connected, and with its own device credential."""
    socket = live_socket(hub, device_id)
    return bool(socket and socket.principal and socket.principal.kind is PrincipalKind.DEVICE)


async def stop(agent: AgentProcess) -> None:
    """SIGTERM, then wait without blocking the loop (the hub answers the agent's last requests)."""
    if agent.proc.poll() is None:
        agent.proc.terminate()

        async def exited() -> bool:
            return agent.proc.poll() is not None

        await eventually(exited, within=15, what="agent exited")


async def test_enroll_command_then_run_presents_the_credential(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """``enroll`` keeps a 0600 credential, prints no secret; ``run`` presents it; enrolling again: 409."""
    token = await enrollment_token(api, uses=2)
    state = tmp_path / "state"
    status, output = await enroll_command(hub, state, "enr-1", MONITOR_AGENT_ENROLLMENT_TOKEN=token)
    assert status == 0, output
    store = CredentialStore(state)
    secret = store.newest()
    assert secret is not None and secret.startswith("mdc_")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert secret not in output and token not in output and "enr-1" in output
    agent = run_agent(hub, state, "enr-1")
    try:
        await eventually(lambda: on_credential(hub, "enr-1"), within=20, what="agent on its credential")
        assert secret not in agent.log()
    finally:
        await stop(agent)
    again, refusal = await enroll_command(hub, state, "enr-1", MONITOR_AGENT_ENROLLMENT_TOKEN=token)
    assert again == 1 and "reset" in refusal, refusal
    assert store.newest() == secret  # a refused enrollment changes nothing kept


async def test_run_enrolls_on_first_start_from_env_or_file(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The first ``run`` enrolls (token from the environment, or a file for --transport http), argv clean."""
    token = await enrollment_token(api)
    token_file = tmp_path / "enroll-token"
    token_file.write_text((await enrollment_token(api)) + "\n")
    ws_agent = run_agent(hub, tmp_path / "ws", "first-ws", MONITOR_AGENT_ENROLLMENT_TOKEN=token)
    http_agent = run_agent(
        hub,
        tmp_path / "http",
        "first-http",
        "--transport",
        "http",
        MONITOR_AGENT_ENROLLMENT_TOKEN_FILE=str(token_file),
    )
    try:
        await eventually(lambda: on_credential(hub, "first-ws"), within=20, what="ws agent enrolled")
        assert token.encode() not in await asyncio.to_thread(
            Path(f"/proc/{ws_agent.proc.pid}/cmdline").read_bytes
        )

        async def http_sample() -> bool:
            found = (await api.get("/devices/first-http")).json()
            return bool(found.get("last_payload"))

        await eventually(http_sample, within=20, what="http agent's samples")
        kept = CredentialStore(tmp_path / "http").newest()
        assert kept is not None and await works(hub, "first-http", kept)
        assert token_file.read_text().strip() not in http_agent.log()
    finally:
        await stop(ws_agent)
        await stop(http_agent)


async def _stall_confirmation(hub: RunningHub) -> tuple[asyncio.Event, Any]:
    enrollment = hub.hub.identity.enrollment
    original = enrollment.confirm_rotation
    arrived = asyncio.Event()

    async def not_processed(device_id: str, *args: Any, **kwargs: Any) -> None:
        arrived.set()
        raise Conflict("the test kills the agent before the hub processes credential_saved")

    enrollment.confirm_rotation = not_processed  # type: ignore[method-assign]
    return arrived, original


@pytest.mark.parametrize("step", ["before_frame", "saved_not_processed", "after"])
async def test_rotation_survives_agent_kill_9_at_each_step(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, step: str
) -> None:
    """SIGKILL before the frame, after the agent saved, or after: restarted, it connects on a live one."""
    token = await enrollment_token(api)
    state, device = tmp_path / "state", f"kill-{step}".replace("_", "-")
    agent = run_agent(hub, state, device, MONITOR_AGENT_ENROLLMENT_TOKEN=token)
    store = CredentialStore(state)
    try:
        await eventually(lambda: on_credential(hub, device), within=20, what="agent enrolled")
        old = store.newest() or ""
        expected = old
        if step == "before_frame":
            await hub.hub.identity.enrollment.begin_rotation(device)  # staged, never sent
        elif step == "saved_not_processed":
            arrived, original = await _stall_confirmation(hub)
            expected = await hub.hub.identity.enrollment.begin_rotation(device)
            socket = live_socket(hub, device)
            assert socket is not None
            socket.offer_credential(expected)
            async with asyncio.timeout(t(10)):
                await arrived.wait()
            hub.hub.identity.enrollment.confirm_rotation = original  # type: ignore[method-assign]
        else:
            assert (await api.post(f"/devices/{device}/rotate")).status_code == 200
            expected = store.newest() or ""
        killed = live_socket(hub, device)
        agent.proc.kill()
        agent.proc.wait()
        assert store.newest() == expected
        agent = run_agent(hub, state, device)  # no enrollment token now: the kept credential only

        async def reconnected() -> bool:
            return await on_credential(hub, device) and live_socket(hub, device) is not killed

        await eventually(reconnected, within=20, what="agent reconnected after kill -9")
        assert await works(hub, device, expected)
        if step != "before_frame":
            assert (await credential_state(api, device))["rotation_pending"] is False
            assert not await works(hub, device, old)
    finally:
        await stop(agent)


async def test_legacy_agent_switches_to_its_credential_after_enroll(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """An agent on the legacy token presents the credential ``enroll`` kept, from its next connection."""
    state = tmp_path / "state"
    agent = spawn_agent(hub, state, "--device-id", "migrating", "--interval", "0.5")
    try:

        async def on_legacy() -> bool:
            socket = hub.hub.sessions.get("migrating")
            return bool(socket and socket.principal and socket.principal.kind is PrincipalKind.LEGACY)

        await eventually(on_legacy, within=20, what="agent on the legacy token")
        token = await enrollment_token(api)
        status, output = await enroll_command(hub, state, "migrating", MONITOR_AGENT_ENROLLMENT_TOKEN=token)
        assert status == 0, output
        await hub.restart()  # the agent reconnects
        await eventually(lambda: on_credential(hub, "migrating"), within=20, what="agent on its credential")
    finally:
        await stop(agent)
