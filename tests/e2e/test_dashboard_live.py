"""The dashboard follows the fleet live: presence, samples, commands, and a hub restart."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Route, expect

from monitor_server.events import DeviceDetails, PresenceChanged
from monitor_server.store import PresenceEvent
from tests.agents import connect_agent, next_frame, send
from tests.e2e.conftest import ARTIFACTS, ms
from tests.hubs import RunningHub
from tests.timing import t

pytestmark = pytest.mark.e2e


def row(page: Page, device_id: str) -> str:
    return f'#fleet tr[data-device-id="{device_id}"]'


async def test_agent_row_appears_then_goes_offline_without_reload(dashboard: Page, hub: RunningHub) -> None:
    """Connecting an agent adds its row live; closing its socket turns the row offline live."""
    await dashboard.evaluate("window.__loads = performance.getEntriesByType('navigation').length")
    ws = await connect_agent(hub, "edge-01")
    await expect(dashboard.locator(row(dashboard, "edge-01"))).to_have_attribute("data-online", "true")
    await send(ws, {"type": "metrics", "cpu": 42.0, "ram": 55.5, "disk": 70.0})
    await expect(dashboard.locator(row(dashboard, "edge-01") + " .num").first).to_have_text("42%")
    await expect(dashboard.locator(row(dashboard, "edge-01"))).to_contain_text("edge-01.test")
    await ws.close()
    offline = dashboard.locator(row(dashboard, "edge-01"))
    await expect(offline).to_have_attribute("data-online", "false")
    await expect(offline).to_contain_text("offline")
    await expect(offline).to_contain_text("disconnected")
    await expect(dashboard.locator("#counts")).to_contain_text("0 online · 1 offline")
    assert await dashboard.evaluate("performance.getEntriesByType('navigation').length") == 1


async def test_late_device_details_do_not_undo_offline(dashboard: Page, hub: RunningHub) -> None:
    """Details fetched for a device first seen without them, arriving once it is offline, keep it offline."""
    fetched, offline_shown, delivered = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def hold_stale_answer(route: Route) -> None:
        stale = await route.fetch()  # answered now, while the device is still online
        fetched.set()
        await offline_shown.wait()
        await route.fulfill(response=stale)
        delivered.set()

    await dashboard.route(f"{hub.http_url}/devices/late-01", hold_stale_answer)
    await hub.hub.store.touch_device("late-01", time.time(), hostname="late-01.test")
    await hub.hub.presence.ws_connected("late-01")  # no details on the event: the page must ask
    line = dashboard.locator(row(dashboard, "late-01"))
    await expect(line).to_have_attribute("data-online", "true")
    async with asyncio.timeout(t(5)):
        await fetched.wait()  # the page asked for the device's details while it was online
    await hub.hub.presence.ws_disconnected("late-01", "disconnected")
    await expect(line).to_have_attribute("data-online", "false")
    offline_shown.set()
    async with asyncio.timeout(t(5)):
        await delivered.wait()
    await expect(line).to_contain_text("late-01.test")  # the late answer has been merged
    await expect(line).to_have_attribute("data-online", "false")
    await expect(dashboard.locator("#counts")).to_contain_text("0 online · 1 offline")


async def test_presence_transitions_do_not_fetch_the_device(dashboard: Page, hub: RunningHub) -> None:
    """Connected events bring hostname/version/platform, so no transition makes the page GET /devices."""
    asked: list[str] = []
    dashboard.on("request", lambda request: asked.append(urlsplit(request.url).path))
    line = dashboard.locator(row(dashboard, "quiet-01"))
    presence = hub.hub.presence
    await presence.ws_connected("quiet-01", DeviceDetails("quiet-01.lan", "4.2", "linux"))
    await expect(line).to_have_attribute("data-online", "true")
    await expect(line).to_contain_text("quiet-01.lan")
    await expect(line).to_contain_text("4.2")
    await presence.ws_disconnected("quiet-01", "disconnected")
    await expect(line).to_have_attribute("data-online", "false")
    await presence.ws_connected("quiet-01", DeviceDetails("quiet-01.lan", "4.3", "linux"))
    await expect(line).to_contain_text("4.3")  # an upgraded agent's version, from the event alone
    await presence.ws_disconnected("quiet-01", "disconnected")
    await expect(line).to_have_attribute("data-online", "false")
    async with await connect_agent(hub, "quiet-01"):  # a real session: one more pair of transitions
        await expect(line).to_have_attribute("data-online", "true")
    await expect(line).to_have_attribute("data-online", "false")
    # A device first seen in an event without details is fetched: once that request is seen, any
    # fetch the transitions above had caused would have been made (the page asks in event order).
    probe = PresenceEvent("probe-01", False, "timeout", "ws", time.time())
    async with dashboard.expect_request(lambda request: request.url.endswith("/devices/probe-01")):
        hub.hub.bus.publish(PresenceChanged.of(probe))
    assert "/devices/quiet-01" not in asked and "/devices" not in asked, asked


async def test_a_new_agent_is_shown_from_its_hello_alone(dashboard: Page, hub: RunningHub) -> None:
    """A real agent never seen before gets its row, hostname included, without a GET /devices."""
    asked: list[str] = []
    dashboard.on("request", lambda request: asked.append(urlsplit(request.url).path))
    line = dashboard.locator(row(dashboard, "hello-01"))
    async with await connect_agent(hub, "hello-01"):
        await expect(line).to_have_attribute("data-online", "true")
        await expect(line).to_contain_text("hello-01.test")  # from the connected event's details
    await expect(line).to_have_attribute("data-online", "false")
    probe = PresenceEvent("probe-02", False, "timeout", "ws", time.time())
    async with dashboard.expect_request(lambda request: request.url.endswith("/devices/probe-02")):
        hub.hub.bus.publish(PresenceChanged.of(probe))
    assert "/devices/hello-01" not in asked and "/devices" not in asked, asked


async def test_presence_change_reaches_the_page_quickly(dashboard: Page, hub: RunningHub) -> None:
    """The row flips to offline within a second of the agent closing (measured in the page)."""
    ws = await connect_agent(hub, "timed-01")
    await expect(dashboard.locator(row(dashboard, "timed-01"))).to_have_attribute("data-online", "true")
    await dashboard.evaluate(WATCH_OFFLINE, "timed-01")
    closed_at = time.time() * 1000
    await ws.close()
    # Awaiting the observer's promise: wait_for_function would poll by eval, which the CSP forbids.
    async with asyncio.timeout(t(5)):
        flipped_at = await dashboard.evaluate("window.__offlineAt")
    latency = flipped_at - closed_at
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "presence-latency-ms.txt").write_text(f"{latency:.1f}\n")
    assert 0 <= latency < ms(1)


# A promise of the moment the row's data-online turns "false": a MutationObserver, not polling.
WATCH_OFFLINE = """(id) => {
  const tr = document.querySelector(`#fleet tr[data-device-id="${id}"]`);
  window.__offlineAt = new Promise((resolve) => {
    new MutationObserver((_, observer) => {
      if (tr.dataset.online === "false") { observer.disconnect(); resolve(Date.now()); }
    }).observe(tr, { attributes: true, attributeFilter: ["data-online"] });
  });
}"""


async def test_command_from_page_reaches_agent_and_shows_ack(dashboard: Page, hub: RunningHub) -> None:
    """A command sent from the device page arrives at the agent; its ack and result show live."""
    ws = await connect_agent(hub, "cmd-01")
    await dashboard.locator(row(dashboard, "cmd-01") + " a").click()
    await expect(dashboard.locator("#device-title")).to_have_text("cmd-01")
    await dashboard.get_by_label("Command", exact=True).fill("echo")
    await dashboard.get_by_label("Arguments (JSON object)").fill('{"text": "hi from the page"}')
    await dashboard.get_by_role("button", name="Send").click()

    command = await next_frame(ws, "command")
    assert command["command"] == "echo" and command["args"] == {"text": "hi from the page"}
    line = dashboard.locator(f'#commands tr[data-command-id="{command["id"]}"]')
    await expect(line).to_have_attribute("data-status", "delivered")
    await send(
        ws,
        {
            "type": "ack",
            "id": command["id"],
            "success": True,
            "message": "echoed",
            "output": {"text": "hi from the page"},
        },
    )
    await expect(line).to_have_attribute("data-status", "acked")
    await expect(line).to_contain_text("acked · ok")
    await expect(line).to_contain_text("echoed")
    await expect(line).to_contain_text("hi from the page")
    await ws.close()


async def test_hub_restart_shows_banner_then_resyncs(dashboard: Page, hub: RunningHub) -> None:
    """A dropped socket shows the banner; after the hub is back the page reconnects and resyncs."""
    ws = await connect_agent(hub, "restart-01")
    await expect(dashboard.locator(row(dashboard, "restart-01"))).to_have_attribute("data-online", "true")
    await hub.stop()
    await expect(dashboard.locator("#banner")).to_be_visible()
    await expect(dashboard.locator("#banner")).to_contain_text("Reconnecting")
    await hub.start()
    await expect(dashboard.locator("#banner")).to_be_hidden(timeout=ms(20))
    await expect(dashboard.locator("#link-state")).to_have_text("live")
    # The agent's socket died with the hub: the fresh snapshot says offline (hub_restart).
    await expect(dashboard.locator(row(dashboard, "restart-01"))).to_have_attribute("data-online", "false")
    await ws.close()
