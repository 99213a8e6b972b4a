"""Secrets stay secret: never in the hub's log at any level, and an unusable token is refused at start."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.agents import next_frame, send
from tests.processes import HubProcess, free_port
from tests.timing import t

TOKEN = "secret-token-0d7c5b2e9a41"
WRONG = "mistyped-token-6f13a8c4d2"


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hub processes a test starts; all stopped at its end."""
    started: list[HubProcess] = []
    yield started
    for process in started:
        process.stop()


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_debug_log_holds_no_token_or_cookie(
    tmp_path: Path, hubs: list[HubProcess], log_format: str
) -> None:
    """With --log-level debug, tokens, bearer values and session cookies are masked in every line."""
    hub = HubProcess(
        tmp_path / "monitor.db",
        free_port(),
        TOKEN,
        MONITOR_LOG_LEVEL="debug",
        MONITOR_LOG_FORMAT=log_format,
    )
    hubs.append(hub)
    await hub.start()
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        assert (await client.get("/devices", headers={"X-Auth-Token": TOKEN})).status_code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/devices", headers=bearer)).status_code == 200
        assert (await client.get("/devices", headers={"X-Auth-Token": WRONG})).status_code == 401
        login = await client.post("/ui/login", data={"token": TOKEN})
        cookie = login.cookies["monitor_session"]
        assert (await client.get("/ui", headers={"Cookie": f"monitor_session={cookie}"})).status_code == 200

    async with connect(hub.ws_url, additional_headers={"X-Auth-Token": TOKEN}, open_timeout=t(5)) as ws:
        await send(ws, {"type": "hello", "protocol": 1, "device_id": "quiet"})
        await next_frame(ws, "welcome")
    with pytest.raises(InvalidStatus):
        await connect(hub.ws_url, additional_headers={"Authorization": f"Bearer {WRONG}"}, open_timeout=t(5))
    ui_url = hub.ws_url.replace("/ws/agent", "/ws/ui")
    browser = {"Cookie": f"monitor_session={cookie}", "Origin": hub.http_url}
    async with connect(ui_url, additional_headers=browser, open_timeout=t(5)) as ui:
        assert "snapshot" in await asyncio.wait_for(ui.recv(), t(5))
    hub.stop()  # the log is complete once the process has exited

    log = hub.log_path.read_text()
    assert "x-auth-token: [redacted]" in log.lower()  # the handshakes' headers were dumped...
    assert "cookie: [redacted]" in log.lower()
    for secret in (TOKEN, WRONG, cookie):
        assert secret not in log  # ...with their values masked


@pytest.mark.parametrize("variable", ["MONITOR_TOKEN", "EXPECTED_TOKEN"])
@pytest.mark.parametrize(
    "token", [" padded-token-8d3e0f71", "padded-token-8d3e0f71\n", "\tpadded-token-8d3e0f71 "]
)
async def test_token_with_surrounding_whitespace_is_refused_at_start(
    tmp_path: Path, variable: str, token: str
) -> None:
    """A configured token with leading or trailing whitespace could never match: the hub will not start."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor_server",
        "--db",
        str(tmp_path / "monitor.db"),
        "--port",
        str(free_port()),
        env={variable: token, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(t(20)):
            output, _ = await proc.communicate()
    finally:
        if proc.returncode is None:  # it started serving
            proc.kill()
            await proc.wait()
    text = output.decode()
    assert proc.returncode not in (0, None)
    assert "whitespace" in text and "MONITOR_TOKEN" in text
    assert token.strip() not in text  # the refusal does not print the secret either
    assert "listening on" not in text and not (tmp_path / "monitor.db").exists()
