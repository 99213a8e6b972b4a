"""Screenshots of the fleet view and a device page, written to test-artifacts/ for a human to look at."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from websockets.asyncio.client import ClientConnection

from tests.agents import connect_agent, next_frame, send
from tests.e2e.conftest import ARTIFACTS
from tests.hubs import RunningHub

pytestmark = pytest.mark.e2e


def history(minutes: int, phase: float) -> list[dict[str, Any]]:
    """A smooth hour of samples, one every 30 s, ending now."""
    now = time.time()
    return [
        {
            "ts": now - 30 * i,
            "cpu": 35 + 30 * math.sin(i / 9 + phase),
            "ram": 60 + 10 * math.sin(i / 30 + phase),
            "disk": 71 + i / 400,
            "net_rx_bps": 2e5 + 1.5e5 * math.sin(i / 5),
            "net_tx_bps": 6e4 + 4e4 * math.cos(i / 7),
        }
        for i in reversed(range(minutes * 2))
    ]


async def fleet(hub: RunningHub, api: httpx.AsyncClient) -> list[ClientConnection]:
    agents = []
    for n in range(6):
        ws = await connect_agent(hub, f"web-{n:02d}")
        await send(ws, {"type": "metrics_batch", "samples": history(60, n)})
        agents.append(ws)
    await api.post(
        "/ingest",
        json={
            "device_id": "legacy-http",
            "hostname": "old-box",
            "cpu": 91.0,
            "ram": 80.0,
            "disk": 97.5,
            "uptime_sec": 10,
            "agent_version": "1.0.0",
            "status": "error",
            "last_error": "disk almost full",
        },
    )
    await agents.pop().close()  # one offline device, for the picture
    return agents


async def test_screenshots_of_fleet_and_device_page(
    dashboard: Page, hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """The fleet view and a device page (charts, presence, commands) are captured as PNGs."""
    agents = await fleet(hub, api)
    await expect(dashboard.locator("#counts")).to_contain_text("6 online · 1 offline")
    for device_id, host in (("web-04", "web-04.test"), ("web-05", "web-05.test"), ("legacy-http", "old-box")):
        await expect(dashboard.locator(f'#fleet tr[data-device-id="{device_id}"]')).to_contain_text(host)
    ARTIFACTS.mkdir(exist_ok=True)
    await dashboard.screenshot(path=ARTIFACTS / "fleet.png", full_page=True)

    await dashboard.locator('#fleet tr[data-device-id="web-00"] a').click()
    await dashboard.get_by_role("button", name="Ping", exact=True).click()
    command = await next_frame(agents[0], "command")
    await send(agents[0], {"type": "ack", "id": command["id"], "success": True, "message": "pong"})
    await expect(dashboard.locator("#commands tbody tr").first).to_contain_text("acked")
    await expect(dashboard.locator("#range-note")).to_contain_text("120 points")
    await dashboard.screenshot(path=ARTIFACTS / "device.png", full_page=True)

    await dashboard.set_viewport_size({"width": 390, "height": 800})
    await dashboard.goto(hub.http_url + "/ui#/")
    await expect(dashboard.locator("#counts")).to_contain_text("6 online")
    await dashboard.screenshot(path=ARTIFACTS / "fleet-narrow.png", full_page=True)
    for ws in agents:
        await ws.close()
