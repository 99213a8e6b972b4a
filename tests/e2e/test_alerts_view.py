"""The alerts view (DESIGN §11, issue 14): a rule created over REST, an agent's samples crossing it,
and the page showing the alert firing and then gone without a reload; the fleet row's firing
badge and the device page's alerts follow; an operator silences an alert from the view."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect
from websockets.asyncio.client import ClientConnection

from tests.agents import connect_agent, send
from tests.e2e.conftest import log_in, ms
from tests.hubs import RunningHub

pytestmark = pytest.mark.e2e

WIDTHS = """() => { const root = document.documentElement;
  return { scroll: root.scrollWidth, client: root.clientWidth }; }"""

RULE = {
    "name": "cpu busy",
    "kind": "threshold",
    "metric": "cpu",
    "op": ">",
    "value": 50,
    "clear_value": 40,
    "for": 0,
    "severity": "critical",
}


@pytest.fixture
async def agent(hub: RunningHub) -> AsyncIterator[ClientConnection]:
    ws = await connect_agent(hub, "web-7")
    try:
        yield ws
    finally:
        await ws.close()


class Metrics:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.seq = ws, 0

    async def cpu(self, value: float) -> None:
        self.seq += 1
        frame = {"type": "metrics", "seq": self.seq, "ts": time.time(), "cpu": value, "ram": 20.0}
        await send(self.ws, {**frame, "disk": 30.0, "uptime_sec": 5, "status": "ok"})


async def test_an_alert_fires_and_resolves_live_on_the_page(
    dashboard: Page, api: httpx.AsyncClient, agent: ClientConnection
) -> None:
    page, metrics = dashboard, Metrics(agent)
    assert (await api.post("/alert-rules", json=RULE)).status_code == 201
    await metrics.cpu(20)
    row = page.locator('#fleet tr[data-device-id="web-7"]')
    await expect(row).to_be_visible()
    await expect(row.locator(".firing")).to_be_hidden()
    await page.get_by_role("link", name="Alerts").click()
    await expect(page.locator("#alerts-view")).to_be_visible()
    await expect(page.locator("#alerts-empty")).to_be_visible()

    await metrics.cpu(80)  # over the value: fires at once (for 0)
    alert = page.locator('#alerts tr[data-device-id="web-7"]')
    await expect(alert).to_have_attribute("data-state", "firing")
    await expect(alert).to_contain_text("cpu busy")
    await expect(alert).to_contain_text("critical")
    await expect(alert).to_contain_text("80")
    await expect(alert.get_by_role("link", name="web-7")).to_have_attribute("href", "#/device/web-7")
    await expect(page.locator("#alerts-counts")).to_have_text("1 firing · 0 pending · 0 silenced")
    await expect(page.locator("#alerts-nav-count")).to_have_text("1")

    await page.get_by_role("link", name="← Fleet").first.click()
    await expect(row.locator(".firing")).to_have_text("1 firing")
    await row.get_by_role("link", name="web-7").click()
    await expect(page.locator("#device-alerts")).to_contain_text("cpu busy")
    await expect(page.locator("#device-alerts li.firing")).to_have_count(1)

    await metrics.cpu(45)  # between clear value and value: still firing
    await metrics.cpu(10)  # under the clear value: resolved
    await expect(page.locator("#device-alerts")).to_have_text("No active alerts.")
    await page.goto(page.url.split("#")[0] + "#/alerts")  # a hash change: the page is not reloaded
    await expect(alert).to_have_count(0)
    await expect(page.locator("#alerts-empty")).to_be_visible()
    await expect(page.locator("#alerts-nav-count")).to_be_hidden()
    await page.goto(page.url.split("#")[0] + "#/")
    await expect(row.locator(".firing")).to_be_hidden()


async def test_an_operator_silences_an_alert_from_the_view(
    dashboard: Page, api: httpx.AsyncClient, agent: ClientConnection
) -> None:
    page, metrics = dashboard, Metrics(agent)
    assert (await api.post("/alert-rules", json=RULE)).status_code == 201
    await metrics.cpu(90)
    await page.get_by_role("link", name="Alerts").click()
    alert = page.locator('#alerts tr[data-device-id="web-7"]')
    await expect(alert).to_have_attribute("data-state", "firing")
    await page.get_by_label("Comment").fill("looking into it")
    await page.get_by_role("button", name="Silence cpu busy on web-7").click()
    await expect(page.locator("#silence-status")).to_contain_text("Silenced cpu busy on web-7 until")
    await expect(alert).to_have_attribute("data-silenced", "true")
    await expect(alert).to_contain_text("firing · silenced")
    (silence,) = (await api.get("/silences")).json()["silences"]
    assert silence["matchers"] == {"device": "web-7", "rule": "cpu busy"}
    assert silence["comment"] == "looking into it"
    assert 3500 < _epoch(silence["ends_at"]) - time.time() <= 3600


async def test_the_alerts_view_fits_390px_in_dark_mode(
    browser: Browser, hub: RunningHub, api: httpx.AsyncClient, agent: ClientConnection
) -> None:
    assert (await api.post("/alert-rules", json=RULE)).status_code == 201
    await Metrics(agent).cpu(99)
    context = await browser.new_context(viewport=ViewportSize(width=390, height=844), color_scheme="dark")
    context.set_default_timeout(ms(10))
    try:
        page = await context.new_page()
        await log_in(page, hub)
        await expect(page.locator("#link-state")).to_have_text("live")
        await expect(page.locator('#fleet tr[data-device-id="web-7"] .firing')).to_have_text("1 firing")
        await _fits(page)
        await page.get_by_role("link", name="Alerts").click()
        await expect(page.locator('#alerts tr[data-device-id="web-7"]')).to_have_attribute(
            "data-state", "firing"
        )
        await _fits(page)
        await page.goto(page.url.split("#")[0] + "#/device/web-7")
        await expect(page.locator("#device-alerts li.firing")).to_have_count(1)
        await _fits(page)
    finally:
        await context.close()


async def _fits(page: Page) -> None:
    widths = await page.evaluate(WIDTHS)
    assert widths["scroll"] <= widths["client"], widths


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
