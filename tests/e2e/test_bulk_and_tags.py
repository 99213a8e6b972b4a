"""Bulk commands, tags and names in the dashboard (issue 16), with real virtual agents on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Page, expect

from monitor_agent.simulator import Fleet, FleetConfig
from tests.agents import connect_agent
from tests.e2e.conftest import ms
from tests.hubs import RunningHub
from tests.timing import t

pytestmark = pytest.mark.e2e
COUNT = 20


@pytest.fixture
async def fleet(hub: RunningHub) -> AsyncIterator[Fleet]:
    """Twenty virtual agents (the agent's own code), which acknowledge the commands they get."""
    config = FleetConfig(
        url=hub.ws_url, token=hub.token, count=COUNT, interval=1.0, backoff_base=0.05, backoff_cap=0.3,
        seed=3, prefix="bulk-",
    )  # fmt: skip
    fleet = Fleet(config)
    running = asyncio.get_running_loop().create_task(fleet.run())
    yield fleet
    fleet.stop()
    async with asyncio.timeout(t(15)):
        await running


async def test_bulk_command_over_twenty_agents_shows_twenty_acked(
    dashboard: Page, hub: RunningHub, fleet: Fleet
) -> None:
    """Filter to the fleet, select all shown, queue a ping: the progress reaches 20 of 20 acked."""
    await expect(dashboard.locator("#counts")).to_contain_text(f"{COUNT} online", timeout=ms(30))
    await dashboard.locator("#filter").fill("bulk-")
    await dashboard.get_by_role("button", name="Select all shown").click()
    await expect(dashboard.locator("#bulk-count")).to_have_text(f"{COUNT} selected")
    await dashboard.locator("#bulk-command").fill("ping")
    await dashboard.get_by_role("button", name="Queue on selected").click()
    summary = dashboard.locator("#bulk-summary")
    await expect(summary).to_have_text(f"{COUNT} of {COUNT} acked · done", timeout=ms(20))
    await expect(dashboard.locator('#bulk-results tr[data-outcome="acked"]')).to_have_count(COUNT)
    await expect(dashboard.locator("#bulk-bar")).to_have_js_property("value", COUNT)


async def test_tags_from_the_fleet_filter_and_select_by_tag(dashboard: Page, hub: RunningHub) -> None:
    """Tick two rows, add a tag: the tag filter offers it, filters to them, survives a reload."""
    sockets = [await connect_agent(hub, f"tagme-{i}") for i in range(3)]
    await expect(dashboard.locator("#counts")).to_contain_text("3 online", timeout=ms(10))
    for i in (0, 2):
        await dashboard.locator(f'#fleet tr[data-device-id="tagme-{i}"] input.pick').check()
    await expect(dashboard.locator("#bulk-count")).to_have_text("2 selected")
    await dashboard.locator("#bulk-tags").fill("rack-7 env=lab")
    await dashboard.get_by_role("button", name="Add tags").click()
    tag_filter = dashboard.locator("#tag-filter")
    await expect(tag_filter.locator("option", has_text="rack-7 (2)")).to_have_count(1)
    await tag_filter.select_option("rack-7")
    rows = dashboard.locator("#fleet tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first.locator(".tags")).to_have_text("env=lab · rack-7")
    await dashboard.reload()
    await expect(dashboard.locator("#tag-filter")).to_have_value("rack-7")
    await expect(dashboard.locator("#fleet tbody tr")).to_have_count(2)
    for ws in sockets:
        await ws.close()


async def test_rename_on_the_device_page_reaches_the_fleet_and_other_browsers(
    dashboard: Page, hub: RunningHub
) -> None:
    """The device page renames and tags; the title and the fleet row show the name; REST agrees."""
    ws = await connect_agent(hub, "named-01")
    await dashboard.goto(hub.http_url + "/ui#/device/named-01")
    await expect(dashboard.locator("#device-title")).to_have_text("named-01")
    await dashboard.get_by_label("Display name").fill("Front web")
    await dashboard.get_by_label("Operator tags").fill("env=prod, on-call")
    await dashboard.get_by_role("button", name="Save", exact=True).click()
    await expect(dashboard.locator("#device-title")).to_have_text("Front web")
    await expect(dashboard.locator("#device-id-note")).to_have_text("named-01")
    await expect(dashboard.locator("#device-tags .tag")).to_have_text(["env=prod", "on-call"])
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as api:
        detail = (await api.get("/devices/named-01")).json()
        assert (detail["name"], detail["tags"]) == ("Front web", ["env=prod", "on-call"])
        await api.patch("/devices/named-01", json={"name": "Renamed elsewhere"})
    await expect(dashboard.locator("#device-title")).to_have_text("Renamed elsewhere")  # a device event
    await dashboard.goto(hub.http_url + "/ui#/")
    row = dashboard.locator('#fleet tr[data-device-id="named-01"]')
    await expect(row.locator("a")).to_have_text("Renamed elsewhere")
    await expect(row.locator(".id")).to_have_text("named-01")
    await ws.close()
