"""Narrow screens (390 px) and dark mode: nothing overflows sideways, tables become cards, pages go dark."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect
from websockets.asyncio.client import ClientConnection

from tests.agents import next_frame, send
from tests.e2e.conftest import ARTIFACTS, log_in, ms
from tests.e2e.test_dashboard_screens import fleet
from tests.hubs import RunningHub

pytestmark = pytest.mark.e2e

NARROW = ViewportSize(width=390, height=844)
DESKTOP = ViewportSize(width=1280, height=900)
WIDTHS = """() => { const root = document.documentElement;
  return { scroll: root.scrollWidth, client: root.clientWidth }; }"""
BOXES = """(elements) => elements.filter((e) => e.offsetParent !== null).map((e) => {
  const r = e.getBoundingClientRect(); return { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
})"""


@asynccontextmanager
async def dashboard_at(
    browser: Browser, hub: RunningHub, viewport: ViewportSize, scheme: Literal["light", "dark"] = "light"
) -> AsyncIterator[Page]:
    """A logged-in dashboard in its own context, at this size and colour scheme."""
    context = await browser.new_context(viewport=viewport, color_scheme=scheme)
    context.set_default_timeout(ms(10))
    try:
        page = await context.new_page()
        await log_in(page, hub)
        await expect(page.locator("#link-state")).to_have_text("live")
        await expect(page.locator("#counts")).to_contain_text("6 online · 1 offline")
        yield page
    finally:
        await context.close()


@pytest.fixture
async def agents(hub: RunningHub, api: httpx.AsyncClient) -> AsyncIterator[list[ClientConnection]]:
    """Six devices with an hour of history (one offline) and a legacy HTTP one with an error."""
    sockets = await fleet(hub, api)
    try:
        yield sockets
    finally:
        for ws in sockets:
            await ws.close()


async def assert_no_sideways_overflow(page: Page) -> None:
    """The page is no wider than the viewport: nothing to scroll horizontally."""
    widths = await page.evaluate(WIDTHS)
    assert widths["scroll"] <= widths["client"], widths


def disjoint(boxes: list[dict[str, float]]) -> bool:
    """No two boxes overlap."""
    return all(
        a["right"] <= b["left"]
        or b["right"] <= a["left"]
        or a["bottom"] <= b["top"]
        or b["bottom"] <= a["top"]
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
    )


def luminance(css_color: str) -> float:
    """Relative luminance (0 black .. 1 white) of an ``rgb(r, g, b)`` colour."""
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_color)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


async def queue_long_command(page: Page, agent: ClientConnection) -> None:
    """A command with long arguments and a long result, acked: the row that used to be 609 px tall."""
    await page.get_by_label("Command", exact=True).fill("collect")
    arguments = {"paths": ["/var/log/" + "very-long-directory-name/" * 4 + "syslog"], "verbose": True}
    await page.get_by_label("Arguments (JSON object)").fill(json.dumps(arguments))
    await page.get_by_role("button", name="Send").click()
    command = await next_frame(agent, "command")
    output = {"lines": ["kernel: " + "a-long-unbroken-token-" * 8, "done"]}
    await send(
        agent, {"type": "ack", "id": command["id"], "success": True, "message": "collected", "output": output}
    )
    line = page.locator(f'#commands tr[data-command-id="{command["id"]}"]')
    await expect(line).to_have_attribute("data-status", "acked")


async def test_fleet_at_390px_has_no_overflow_and_a_row_of_sort_buttons(
    browser: Browser, hub: RunningHub, agents: Any
) -> None:
    """At 390x844 the fleet page fits the width, sort buttons do not overlap, cards are all one height."""
    async with dashboard_at(browser, hub, NARROW) as page:
        await expect(page.locator('#fleet tr[data-device-id="legacy-http"]')).to_contain_text(
            "disk almost full"
        )
        await assert_no_sideways_overflow(page)
        headers = await page.locator("#fleet th").evaluate_all(BOXES)
        assert len(headers) == 6 and disjoint(headers), headers  # Status, Device, Last seen, CPU, RAM, Disk
        assert all(box["left"] >= 0 and box["right"] <= NARROW["width"] for box in headers), headers
        cards = await page.locator("#fleet tbody tr").evaluate_all(BOXES)
        assert len({round(card["bottom"] - card["top"], 1) for card in cards}) == 1, cards  # virtualized
        await page.locator('#fleet th[data-sort="cpu"] button').click()
        await expect(page.locator('#fleet th[data-sort="cpu"]')).to_have_attribute("aria-sort", "descending")
        await expect(page.locator("#fleet tbody tr").first).to_have_attribute("data-device-id", "legacy-http")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "fleet-narrow.png", full_page=True)


async def test_device_page_at_390px_has_no_overflow_and_commands_wrap(
    browser: Browser, hub: RunningHub, agents: list[ClientConnection]
) -> None:
    """At 390x844 the device page fits; a long command result wraps in its box; "now" sits under the strip."""
    async with dashboard_at(browser, hub, NARROW) as page:
        await page.locator('#fleet tr[data-device-id="web-00"] a').click()
        await expect(page.locator("#range-note")).to_contain_text("120 points")
        await queue_long_command(page, agents[0])
        await assert_no_sideways_overflow(page)
        table = await page.locator("#commands").evaluate(
            "(t) => [t.scrollWidth, t.parentElement.clientWidth]"
        )
        assert table[0] <= table[1], table
        row = await page.locator("#commands tbody tr").first.evaluate(
            "(tr) => tr.getBoundingClientRect().height"
        )
        assert row < 250, row
        strip = await page.locator("#timeline").evaluate(
            "(c) => { const r = c.getBoundingClientRect(), clip = getComputedStyle(c).clipPath;"
            " return { bottom: r.bottom - parseFloat(clip.match(/inset\\(0px 0px ([\\d.]+)px/)[1]) }; }"
        )
        axis = await page.locator(".timeline-axis").evaluate("(a) => a.getBoundingClientRect().top")
        assert strip["bottom"] <= axis + 0.5, (strip, axis)
        await expect(page.locator(".timeline-axis")).to_contain_text("1 hour ago")
        await page.screenshot(path=ARTIFACTS / "device-narrow.png", full_page=True)


async def test_dark_mode_follows_the_system_setting(
    browser: Browser, hub: RunningHub, agents: list[ClientConnection]
) -> None:
    """With a dark system setting the login, fleet and device pages have a dark background, light text."""
    context = await browser.new_context(viewport=DESKTOP, color_scheme="dark")
    try:
        login = await context.new_page()
        await login.goto(hub.http_url + "/ui")
        body = await login.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert luminance(body) < 0.1, body
        await login.screenshot(path=ARTIFACTS / "login-dark.png")
    finally:
        await context.close()
    async with dashboard_at(browser, hub, DESKTOP, "dark") as page:
        colours = await page.evaluate(
            "() => { const s = getComputedStyle(document.body); return [s.backgroundColor, s.color]; }"
        )
        assert luminance(colours[0]) < 0.1 and luminance(colours[1]) > 0.7, colours
        await page.screenshot(path=ARTIFACTS / "fleet-dark.png", full_page=True)
        await page.locator('#fleet tr[data-device-id="web-00"] a').click()
        await expect(page.locator("#range-note")).to_contain_text("120 points")
        chart = await page.locator("#chart-cpu").evaluate("(c) => getComputedStyle(c).filter")
        assert "invert(1)" in chart, chart  # charts drawn for a light page are turned dark
        await page.screenshot(path=ARTIFACTS / "device-dark.png", full_page=True)
        await page.set_viewport_size(NARROW)
        await page.goto(hub.http_url + "/ui#/")
        await expect(page.locator("#counts")).to_contain_text("6 online")
        await assert_no_sideways_overflow(page)
        await page.screenshot(path=ARTIFACTS / "fleet-narrow-dark.png", full_page=True)
