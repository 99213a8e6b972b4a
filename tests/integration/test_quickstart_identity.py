"""``make run`` shows the identity model: an admin account, and a local agent on its own credential."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.agentd import eventually
from tests.processes import free_port


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def proc_file(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


@asynccontextmanager
async def make_run(
    folder: Path, port: int, log_name: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], Path]]:
    """``python -m monitor_server.quickstart`` (what ``make run`` runs) in ``folder``; SIGINT at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(MONITOR_PORT=str(port), MONITOR_HOST="127.0.0.1")
    out = folder / log_name
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor_server.quickstart"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, out
    finally:
        proc.send_signal(signal.SIGINT)

        async def exited() -> bool:
            return proc.poll() is not None

        await eventually(exited, within=20, what="make run stopped")


async def connected(client: httpx.AsyncClient, device_id: str) -> bool:
    try:
        found = await client.get(f"/devices/{device_id}")
    except httpx.TransportError:  # not listening yet
        return False
    return found.status_code == 200 and bool(found.json().get("connected"))


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
async def test_make_run_agent_enrolls_and_its_argv_holds_no_secret(tmp_path: Path) -> None:
    """An admin password and link that log in; the agent enrolls by environment, no secret in its argv."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = tmp_path / "data" / "agent"
    async with make_run(tmp_path, port, "first.log") as (proc, out):

        async def banner() -> re.Match[str] | None:
            return re.search(r"Log in:\s+(\S+)[\s\S]*Account:\s+admin / (\S+)", out.read_text())

        link, password = (await eventually(banner, within=30, what="the banner")).groups()

        async def credential_kept() -> bool:
            return (state / "credential").exists() and (state / "device_id").exists()

        await eventually(credential_kept, within=30, what="the local agent enrolled")
        device_id = (state / "device_id").read_text().strip()
        credential = (state / "credential").read_text().strip()
        async with httpx.AsyncClient(base_url=base) as client:
            login = await client.post("/login", json={"name": "admin", "password": password})
            assert login.status_code == 200, login.text
            await eventually(lambda: connected(client, device_id), within=30, what="the agent connected")
            state_of = (await client.get(f"/devices/{device_id}/credential")).json()
            assert state_of["revoked"] is False and "make-run" in state_of["tags"]
        async with httpx.AsyncClient(base_url=base) as browser:
            assert (await browser.get(link)).status_code in (200, 303)
            me = (await browser.get("/me")).json()
            assert me["name"] == "admin" and me["role"] == "admin", me
        (agent,) = children(proc.pid)
        argv, environ = proc_file(agent, "cmdline"), proc_file(agent, "environ")
        enrollment = re.search(rb"MONITOR_AGENT_ENROLLMENT_TOKEN=([^\0]+)", environ)
        assert enrollment is not None  # it came by environment...
        legacy = (tmp_path / "data" / "token").read_text().strip()
        secrets = [enrollment.group(1), password.encode(), credential.encode(), legacy.encode()]
        assert not [s for s in secrets if s in argv], argv  # ...and no secret is on the command line
        assert b"MONITOR_AGENT_TOKEN" not in environ  # the fleet token is not handed to the agent

    async with make_run(tmp_path, port, "second.log") as (proc, out):  # the same folder again
        async with httpx.AsyncClient(base_url=base, headers={"X-Auth-Token": legacy}) as client:
            await eventually(lambda: connected(client, device_id), within=30, what="the agent reconnected")
        assert "log in with your account" in out.read_text() and password not in out.read_text()
        (agent,) = children(proc.pid)
        assert b"MONITOR_AGENT_ENROLLMENT_TOKEN" not in proc_file(agent, "environ")  # its credential is known
        assert (state / "credential").read_text().strip() == credential
