"""``make run`` shows the identity model: an admin account, and a local agent on its own credential."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
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


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
async def test_make_run_agent_enrolls_and_its_argv_holds_no_secret(tmp_path: Path) -> None:
    """The quickstart prints an admin password that logs in; its agent enrolls; no secret in its argv."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(MONITOR_PORT=str(port), MONITOR_HOST="127.0.0.1")
    out = tmp_path / "make-run.log"
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor_server.quickstart"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        async def banner() -> re.Match[str] | None:
            return re.search(r"Account:\s+admin / (\S+)", out.read_text())

        password = (await eventually(banner, within=30, what="the banner's account line")).group(1)
        state = tmp_path / "data" / "agent"

        async def credential_kept() -> bool:
            return (state / "credential").exists() and (state / "device_id").exists()

        await eventually(credential_kept, within=30, what="the local agent enrolled")
        device_id = (state / "device_id").read_text().strip()
        credential = (state / "credential").read_text().strip()
        async with httpx.AsyncClient(base_url=base) as client:
            login = await client.post("/login", json={"name": "admin", "password": password})
            assert login.status_code == 200, login.text

            async def online() -> bool:
                found = await client.get(f"/devices/{device_id}")
                return found.status_code == 200 and bool(found.json().get("connected"))

            await eventually(online, within=30, what="the local agent connected")
            state_of = (await client.get(f"/devices/{device_id}/credential")).json()
            assert state_of["revoked"] is False and "make-run" in state_of["tags"]
        (agent,) = children(proc.pid)
        argv, environ = proc_file(agent, "cmdline"), proc_file(agent, "environ")
        enrollment = re.search(rb"MONITOR_AGENT_ENROLLMENT_TOKEN=([^\0]+)", environ)
        assert enrollment is not None  # it came by environment...
        legacy = (tmp_path / "data" / "token").read_text().strip()
        secrets = [enrollment.group(1), password.encode(), credential.encode(), legacy.encode()]
        assert not [s for s in secrets if s in argv], argv  # ...and no secret is on the command line
        assert b"MONITOR_AGENT_TOKEN" not in environ  # the fleet token is not handed to the agent
    finally:
        proc.send_signal(signal.SIGINT)

        async def exited() -> bool:
            return proc.poll() is not None

        await eventually(exited, within=20, what="make run stopped")
