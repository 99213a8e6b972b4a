"""The device page in headless Chromium: every metric with units, hover values, ranges up to a
year, the commands the device offers, and no horizontal overflow on a 390 px screen."""

from __future__ import annotations

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

GIB = 1024**3
FULL_SAMPLE: dict[str, Any] = {
    "cpu": 12.5,
    "ram": 25.0,
    "disk": 40.0,
    "uptime_sec": 3 * 86400 + 4 * 3600 + 5 * 60,
    "load_1": 0.52,
    "load_5": 0.61,
    "load_15": 0.7,
    "mem_used": 4 * GIB,
    "mem_total": 16 * GIB,
    "swap_used": 512 * 1024**2,
    "swap_total": 2 * GIB,
    "disk_used": 200 * GIB,
    "disk_total": 500 * GIB,
    "disk_read_bps": 1500.0,
    "disk_write_bps": 2_500_000.0,
    "net_rx_bps": 512.0,
    "net_tx_bps": 64_000.0,
    "procs": 231,
    "temp_max": 54.46,
    "agent_rss": 48 * 1024**2,
}


def recent(count: int) -> list[dict[str, Any]]:
    """``count`` full samples, one every 30 s, ending now, with a varying CPU."""
    now = time.time()
    return [{**FULL_SAMPLE, "ts": now - 30 * i, "cpu": 10.0 + i % 7} for i in reversed(range(count))]


async def agent_with_history(hub: RunningHub, device_id: str, samples: int) -> ClientConnection:
    """An agent offering ping and echo whose recent history the hub has stored (its ``stored`` ack)."""
    ws = await connect_agent(hub, device_id, capabilities=["ping", "echo", "stored_acks"])
    await send(ws, {"type": "metrics_batch", "seq": 1, "samples": recent(samples)})
    await next_frame(ws, "stored")
    return ws


async def test_device_page_shows_every_metric_with_units(
    dashboard: Page, hub: RunningHub, api: httpx.AsyncClient
) -> None:
    ws = await agent_with_history(hub, "full-01", 60)
    await dashboard.goto(hub.http_url + "/ui#/device/full-01")
    facts = dashboard.locator("#device-facts")
    for term, value in (
        ("Load 1 / 5 / 15 min", "0.52 / 0.61 / 0.7"),
        ("Memory used", "4.0 GiB / 16 GiB (25%)"),
        ("Swap used", "512 MiB / 2.0 GiB (25%)"),
        ("Disk used", "200 GiB / 500 GiB (40%)"),
        ("Disk read / write", "1.5 kB/s / 2.5 MB/s"),
        ("Network rx / tx", "512 B/s / 64 kB/s"),
        ("Processes", "231"),
        ("Temperature", "54.5 °C"),
        ("Uptime", "3 d 4 h"),
        ("Agent memory (RSS)", "48 MiB"),
    ):
        await expect(facts.locator("div", has_text=term)).to_contain_text(value)
    await expect(dashboard.locator("#offered-commands li")).to_have_text(["echo", "ping"])
    for chart in ("cpu", "load", "memory", "diskio", "net", "temp", "procs"):
        await expect(dashboard.locator(f"#chart-{chart}")).to_be_visible()
    await expect(dashboard.locator("#range-note")).to_contain_text("60 points")

    # hovering a chart shows the values at that time
    canvas = dashboard.locator("#chart-load")
    box = await canvas.bounding_box()
    assert box is not None
    await dashboard.mouse.move(box["x"] + box["width"] - 20, box["y"] + box["height"] / 2)
    readout = canvas.locator("xpath=..").locator(".chart-readout")
    await expect(readout).to_be_visible()
    await expect(readout).to_contain_text("1 min: 0.52")
    await expect(readout).to_contain_text("15 min: 0.7")
    ARTIFACTS.mkdir(exist_ok=True)
    await dashboard.screenshot(path=ARTIFACTS / "device-full.png", full_page=True)
    await dashboard.mouse.move(0, 0)
    await expect(readout).to_be_hidden()

    # a year: twelve-hour averages from the hub's hour tier
    await dashboard.get_by_role("button", name="1 year").click()
    await expect(dashboard.get_by_role("button", name="1 year")).to_have_attribute("aria-pressed", "true")
    await expect(dashboard.locator("#range-note")).to_contain_text("12 h averages")
    await expect(dashboard.locator("#range")).to_have_value("31536000")
    await ws.close()


async def test_narrow_device_page_has_no_horizontal_overflow(
    dashboard: Page, hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """390 px wide, with every fact, the charts and a command with a long result in its history."""
    device = "a-rather-long-device-identifier-for-narrow-screens"
    ws = await agent_with_history(hub, device, 20)
    queued = await api.post(
        f"/devices/{device}/commands", json={"command": "echo", "args": {"text": "x" * 200}}
    )
    assert queued.status_code in (200, 201), queued.text
    command = await next_frame(ws, "command")
    result = {"text": "y" * 300, "lines": ["a long line of output " * 5]}
    await send(
        ws, {"type": "ack", "id": command["id"], "success": True, "message": "z" * 120, "result": result}
    )
    await dashboard.set_viewport_size({"width": 390, "height": 800})
    await dashboard.goto(hub.http_url + f"/ui#/device/{device}")
    await expect(dashboard.locator("#device-facts")).to_contain_text("3 d 4 h")
    await expect(dashboard.locator("#commands tbody tr").first).to_contain_text("acked")
    await expect(dashboard.locator("#offered-commands li")).to_have_count(2)
    widths = await dashboard.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    await dashboard.screenshot(path=ARTIFACTS / "device-narrow.png", full_page=True)
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px viewport"
    await ws.close()
