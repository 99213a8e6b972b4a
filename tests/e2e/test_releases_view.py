"""The releases view (DESIGN §12, issue 15): a release published into a real hub, rolled out from the
page's form to a test agent that announced ``updates``; its ``update_status`` frames (downloading,
then installed) change the page's counts and device list without a reload; 390 px dark mode fits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from monitor_server.releases_cli import keygen, publish
from tests.agents import next_frame, send
from tests.e2e.conftest import log_in, ms
from tests.e2e.test_narrow_dark import NARROW, assert_no_sideways_overflow, luminance
from tests.hubs import RunningHub
from tests.integration.test_releases import hello, make_bundle

pytestmark = pytest.mark.e2e


async def published(hub: RunningHub, folder: Path, version: str) -> None:
    private, _ = keygen(folder / "keys")
    await asyncio.to_thread(publish, make_bundle(folder, version), private, hub.settings.db, "test")


def counts(page: Page, version: str, state: str) -> object:
    return page.locator(f'#releases tr[data-version="{version}"] .count[data-state="{state}"]')


async def test_a_rollout_progresses_live_on_the_releases_page(
    dashboard: Page, hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    page = dashboard
    await published(hub, tmp_path, "0.2.0")
    agent = await hello(hub, "upd-web-1")
    try:
        await page.get_by_role("link", name="Releases").click()
        await expect(page.locator("#releases-view")).to_be_visible()
        row = page.locator('#releases tr[data-version="0.2.0"]')
        await expect(row).to_contain_text("not rolled out")
        await expect(counts(page, "0.2.0", "offered")).to_have_text("offered 0")
        await expect(page.locator("#release-detail-title")).to_have_text("Release 0.2.0")

        await page.get_by_label("Roll out to").select_option("devices")
        await page.get_by_label("Percent, devices or tags").fill("upd-web-1")
        await page.get_by_role("button", name="Start rollout").click()
        await expect(page.locator("#rollout-status")).to_contain_text("offered to 1 connected agent")
        assert (await next_frame(agent, "update"))["version"] == "0.2.0"
        await expect(row).to_contain_text("devices upd-web-1")
        await expect(counts(page, "0.2.0", "offered")).to_have_text("offered 1")
        device = page.locator('#release-devices tr[data-device-id="upd-web-1"]')
        await expect(device).to_have_attribute("data-state", "offered")

        await send(agent, {"type": "update_status", "version": "0.2.0", "state": "downloading", "reason": ""})
        await expect(counts(page, "0.2.0", "downloading")).to_have_text("downloading 1")
        await expect(counts(page, "0.2.0", "offered")).to_have_text("offered 0")
        await expect(device).to_have_attribute("data-state", "downloading")
        await send(agent, {"type": "update_status", "version": "0.2.0", "state": "installed", "reason": ""})
        await expect(counts(page, "0.2.0", "installed")).to_have_text("installed 1")
        await expect(counts(page, "0.2.0", "downloading")).to_have_text("downloading 0")
        await expect(device).to_have_attribute("data-state", "installed")
        await expect(page.locator("#release-counts")).to_contain_text("installed 1")
        detail = (await api.get("/releases/0.2.0")).json()
        assert detail["counts"]["installed"] == 1, detail
    finally:
        await agent.close()


async def test_releases_page_at_390px_dark_fits_and_is_dark(
    browser: Browser, hub: RunningHub, tmp_path: Path
) -> None:
    await published(hub, tmp_path, "0.2.0")
    context = await browser.new_context(viewport=NARROW, color_scheme="dark")
    context.set_default_timeout(ms(10))
    try:
        page = await context.new_page()
        await log_in(page, hub)
        await expect(page.locator("#link-state")).to_have_text("live")
        await page.get_by_role("link", name="Releases").click()
        await expect(page.locator('#releases tr[data-version="0.2.0"]')).to_be_visible()
        await expect(page.get_by_role("button", name="Start rollout")).to_be_visible()
        await assert_no_sideways_overflow(page)
        background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert luminance(background) < 0.2, background
    finally:
        await context.close()
