"""``monitor-server users`` and ``enroll-token`` against the database of a running hub."""

from __future__ import annotations

import asyncio
import sys

import httpx

from tests.hubs import RunningHub
from tests.timing import t


async def cli(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run ``monitor-server`` with ``args`` (not blocking the hub, which runs in this loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor_server",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(t(60)):
        out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_users_add_and_enroll_token_while_the_hub_runs(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A user added from stdin logs in, a printed token enrolls a device, both audited as the CLI."""
    db = str(hub.db_path)
    code, out, err = await cli("users", "add", "ada", "--role", "admin", "--db", db, stdin="ada-password\n")
    assert code == 0 and "ada-password" not in out + err, err
    code, out, err = await cli(
        "enroll-token", "create", "--expires-in", "600", "--max-uses", "2", "--tags", "lab,eu", "--db", db
    )
    token = out.strip()
    assert code == 0 and token.startswith("met_") and token not in err and "shown only once" in err
    async with httpx.AsyncClient(base_url=hub.http_url) as browser:
        assert (
            await browser.post("/login", json={"name": "ada", "password": "ada-password"})
        ).status_code == 200
    enrolled = await api.post("/enroll", json={"token": token, "device_id": "cli-dev"})
    assert enrolled.status_code == 201
    assert (await api.get("/devices/cli-dev/credential")).json()["tags"] == ["lab", "eu"]
    events = (await api.get("/audit")).json()["events"]
    kinds = {(e["action"], e["actor_kind"]) for e in events}
    assert {("user_created", "cli"), ("enrollment_token_created", "cli")} <= kinds


async def test_users_add_refuses_a_taken_name_and_a_short_password(hub: RunningHub) -> None:
    """A second user of the same name, or a password under 8 characters, exits non-zero with a reason."""
    db = str(hub.db_path)
    assert (await cli("users", "add", "bo", "--db", db, stdin="bo-password\n"))[0] == 0
    code, _, err = await cli("users", "add", "bo", "--db", db, stdin="bo-password\n")
    assert code != 0 and "already exists" in err
    code, _, err = await cli("users", "add", "cy", "--db", db, stdin="short\n")
    assert code != 0 and "8" in err
    code, out, _ = await cli("users", "list", "--db", db)
    assert code == 0 and out.split() == ["bo", "viewer"]
