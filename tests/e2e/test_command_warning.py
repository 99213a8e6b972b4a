"""Queueing a command for a device that is offline, or that never connected, says so on the page."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.agents import connect_agent, next_frame
from tests.hubs import RunningHub

pytestmark = pytest.mark.e2e


async def test_offline_device_warns_and_names_the_queued_command(dashboard: Page, hub: RunningHub) -> None:
    """An offline device's page warns; a ping queued there is named; the warning goes when it is back."""
    ws = await connect_agent(hub, "away-01")
    line = dashboard.locator('#fleet tr[data-device-id="away-01"]')
    await expect(line).to_have_attribute("data-online", "true")
    await line.locator("a").click()
    warning = dashboard.locator("#command-warning")
    await expect(dashboard.locator("#device-title")).to_have_text("away-01")
    await expect(warning).to_be_hidden()
    await ws.close()
    await expect(warning).to_contain_text("away-01 is offline since")
    await dashboard.get_by_role("button", name="Ping", exact=True).click()
    queued = dashboard.locator("#commands tbody tr").first
    await expect(queued).to_have_attribute("data-status", "pending")
    command_id = await queued.get_attribute("data-command-id")
    await expect(warning).to_contain_text(f"Command #{command_id} (ping) is queued for it")
    async with await connect_agent(hub, "away-01") as back:
        await expect(warning).to_be_hidden()
        assert (await next_frame(back, "command"))["id"] == int(command_id or 0)


async def test_unknown_device_warns_before_and_after_queueing(dashboard: Page, hub: RunningHub) -> None:
    """A device id the hub has never seen: the page says a command waits until it connects."""
    await dashboard.goto(hub.http_url + "/ui#/device/ghost-01")
    warning = dashboard.locator("#command-warning")
    await expect(warning).to_contain_text('No device "ghost-01" has connected to this hub yet')
    await dashboard.get_by_role("button", name="Ping", exact=True).click()
    await expect(dashboard.locator("#commands tbody tr")).to_have_count(1)
    await expect(warning).to_contain_text("(ping) is queued for it")
