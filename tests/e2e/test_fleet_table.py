"""The fleet table: sort order and arrows agree, offline rows dimmed, sort and filter in the URL, and
only the rows in view are in the DOM (virtualized)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, expect
from websockets.asyncio.client import ClientConnection

from monitor_server.events import DeviceDetails
from tests.agents import next_frame, open_socket, send
from tests.hubs import RunningHub

pytestmark = pytest.mark.e2e

# device id: (hostname, agent version, metrics or None for a device that never sent a sample)
FLEET: dict[str, tuple[str, str, dict[str, float] | None]] = {
    "n-1": ("h-c", "1.3", {"cpu": 50.0, "ram": 20.0, "disk": 70.0}),
    "n-2": ("h-a", "1.1", {"cpu": 95.0, "ram": 60.0, "disk": 10.0}),
    "n-3": ("h-b", "1.2", {"cpu": 10.0, "ram": 90.0, "disk": 40.0}),
    "n-4": ("h-d", "1.4", None),
    "n-5": ("h-e", "1.5", {"cpu": 97.0, "ram": 30.0, "disk": 20.0}),  # goes offline
}
COLUMNS = [
    "online",
    "device_id",
    "hostname",
    "agent_version",
    "last_seen",
    "cpu",
    "ram",
    "disk",
    "last_error",
]
ARROW = {"ascending": "▲", "descending": "▼"}

# Per visible row: what the operator reads in each sortable column (last seen from the page's state,
# the cell only says "just now"). None: the cell shows no value.
ROW_VALUES = """() => [...document.querySelectorAll('#fleet tbody tr:not([hidden])')].map((tr) => {
  const id = tr.dataset.deviceId, cells = [...tr.children].slice(1);  // after the selection box
  const device = window.monitorDashboard.state.devices.get(id);
  const dash = '\\u2013';
  const text = (i) => { const t = cells[i].textContent.trim(); return t && t !== dash ? t : null; };
  const num = (i) => {
    const t = cells[i].querySelector('.num').textContent;
    return t === dash ? null : parseFloat(t);
  };
  return { id, online: cells[0].querySelector('.badge').textContent === 'online' ? 1 : 0, device_id: id,
    hostname: text(2), agent_version: text(3), last_seen: device.last_seen ?? null,
    cpu: num(5), ram: num(6), disk: num(7), last_error: text(8) };
})"""
FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


async def hello(hub: RunningHub, device_id: str, hostname: str, version: str) -> ClientConnection:
    """An agent socket whose hello carries this hostname and version."""
    ws = await open_socket(hub)
    frame = {"type": "hello", "protocol": 1, "device_id": device_id, "agent_version": version,
             "hostname": hostname, "platform": "linux", "capabilities": ["ping"]}  # fmt: skip
    await ws.send(json.dumps(frame))
    assert (await next_frame(ws))["type"] == "welcome"
    return ws


@pytest.fixture
async def fleet(dashboard: Page, hub: RunningHub) -> AsyncIterator[dict[str, ClientConnection]]:
    """Five agents on the page, four online with samples (one without), one offline."""
    sockets: dict[str, ClientConnection] = {}
    for device_id, (hostname, version, metrics) in FLEET.items():
        sockets[device_id] = await hello(hub, device_id, hostname, version)
        line = dashboard.locator(f'#fleet tr[data-device-id="{device_id}"]')
        await expect(line).to_contain_text(hostname)
        if metrics:
            await send(sockets[device_id], {"type": "metrics", **metrics})
            await expect(line.locator(".num").first).to_have_text(f"{metrics['cpu']:.0f}%")
    await sockets.pop("n-5").close()
    await expect(dashboard.locator('#fleet tr[data-device-id="n-5"]')).to_have_attribute(
        "data-online", "false"
    )
    try:
        yield sockets
    finally:
        for ws in sockets.values():
            await ws.close()


def assert_ordered(rows: list[dict[str, Any]], column: str, direction: str) -> None:
    """Values run smallest first (ascending) or largest first (descending), empty cells last."""
    values = [row[column] for row in rows]
    present = [v for v in values if v is not None]
    assert values == present + [None] * (len(values) - len(present)), (column, direction, values)
    expected = sorted(present, reverse=direction == "descending")
    assert present == expected, (column, direction, values)


async def sort_state(page: Page, column: str) -> tuple[str | None, str]:
    """The header's aria-sort and the arrow drawn after its label."""
    header = page.locator(f'#fleet th[data-sort="{column}"]')
    arrow = await header.locator("button").evaluate("(b) => getComputedStyle(b, '::after').content")
    return await header.get_attribute("aria-sort"), arrow


async def test_sort_order_and_arrow_agree_on_every_column_both_ways(dashboard: Page, fleet: Any) -> None:
    """Each sortable column, clicked twice: the arrow and aria-sort say the direction the rows are in."""
    seen: dict[str, set[str]] = {}
    for column in COLUMNS:
        header = dashboard.locator(f'#fleet th[data-sort="{column}"]')
        for _ in range(2):
            before = await header.get_attribute("aria-sort")
            await header.locator("button").click()
            await expect(header).not_to_have_attribute("aria-sort", before or "none")
            await dashboard.evaluate(FRAMES)  # the re-sort happens on the next animation frame
            direction, arrow = await sort_state(dashboard, column)
            assert direction in ARROW, (column, direction)
            assert ARROW[direction] in arrow, (column, direction, arrow)
            assert_ordered(await dashboard.evaluate(ROW_VALUES), column, direction)
            seen.setdefault(column, set()).add(direction)
    assert all(directions == {"ascending", "descending"} for directions in seen.values()), seen


async def test_first_click_on_cpu_puts_the_busiest_on_top_under_a_down_arrow(
    dashboard: Page, fleet: Any
) -> None:
    """The case from the issue: one click on CPU shows ▼ with the highest value on top."""
    await dashboard.locator('#fleet th[data-sort="cpu"] button').click()
    await expect(dashboard.locator('#fleet th[data-sort="cpu"]')).to_have_attribute("aria-sort", "descending")
    await expect(dashboard.locator("#fleet tbody tr").first).to_have_attribute("data-device-id", "n-5")


async def test_rows_move_as_soon_as_their_value_changes(
    dashboard: Page, fleet: dict[str, ClientConnection]
) -> None:
    """Sorted by CPU, a new sample puts its row in place in the same frame its number changes."""
    await dashboard.locator('#fleet th[data-sort="cpu"] button').click()
    await expect(dashboard.locator("#fleet tbody tr").nth(1)).to_have_attribute("data-device-id", "n-2")
    for cpu, device_id in [(99.0, "n-3"), (20.0, "n-2"), (60.0, "n-1"), (98.0, "n-2")]:
        await send(fleet[device_id], {"type": "metrics", "cpu": cpu, "ram": 1.0, "disk": 1.0})
        cell = dashboard.locator(f'#fleet tr[data-device-id="{device_id}"] .num').first
        await expect(cell).to_have_text(f"{cpu:.0f}%")
        assert_ordered(await dashboard.evaluate(ROW_VALUES), "cpu", "descending")


async def test_offline_row_is_dimmed_and_its_bars_lose_colour(dashboard: Page, fleet: Any) -> None:
    """An offline device's 97% CPU is neither red nor full strength; an online 95% still is red."""
    style = """(tr) => { const fill = tr.querySelector('.fill'), cell = fill.closest('td');
      return { fill: getComputedStyle(fill).backgroundColor,
               opacity: parseFloat(getComputedStyle(cell).opacity),
               crit: fill.classList.contains('crit') }; }"""
    offline = await dashboard.locator('#fleet tr[data-device-id="n-5"]').evaluate(style)
    online = await dashboard.locator('#fleet tr[data-device-id="n-2"]').evaluate(style)
    assert online == {"fill": "rgb(192, 57, 43)", "opacity": 1, "crit": True}
    assert offline["fill"] == "rgb(154, 161, 173)", offline  # grey, although the value is critical
    assert offline["opacity"] <= 0.6, offline


async def test_sort_and_filter_survive_a_reload(dashboard: Page, fleet: Any) -> None:
    """Filter text, status and sort are kept in the address bar and restored by a reload."""
    await dashboard.locator('#fleet th[data-sort="ram"] button').click()
    await dashboard.locator('#fleet th[data-sort="ram"] button').click()  # ascending
    await dashboard.get_by_label("Filter").fill("h-")
    await dashboard.locator("#status-filter").select_option("online")
    await expect(dashboard.locator('#fleet tr[data-device-id="n-5"]')).to_be_hidden()
    assert "sort=ram" in dashboard.url and "dir=asc" in dashboard.url and "status=online" in dashboard.url
    await dashboard.reload()
    await expect(dashboard.locator("#link-state")).to_have_text("live")
    await expect(dashboard.get_by_label("Filter")).to_have_value("h-")
    await expect(dashboard.locator("#status-filter")).to_have_value("online")
    await expect(dashboard.locator('#fleet th[data-sort="ram"]')).to_have_attribute("aria-sort", "ascending")
    await expect(dashboard.locator('#fleet tr[data-device-id="n-3"]')).to_be_visible()
    await expect(dashboard.locator('#fleet tr[data-device-id="n-5"]')).to_be_hidden()
    await expect(dashboard.locator("#counts")).to_contain_text("(4 shown)")
    await dashboard.evaluate(FRAMES)
    rows = await dashboard.evaluate(ROW_VALUES)
    assert [row["id"] for row in rows] == ["n-1", "n-2", "n-3", "n-4"]  # RAM 20, 60, 90, none
    assert_ordered(rows, "ram", "ascending")


async def test_one_device_is_counted_in_the_singular(dashboard: Page, hub: RunningHub) -> None:
    """The count reads 1 device, not 1 devices."""
    ws = await hello(hub, "solo-01", "solo.test", "1.0")
    try:
        await expect(dashboard.locator("#counts")).to_have_text("1 online · 0 offline · 1 device")
    finally:
        await ws.close()


async def test_a_big_fleet_keeps_only_the_rows_in_view_in_the_dom(dashboard: Page, hub: RunningHub) -> None:
    """300 devices: a screenful of rows is in the DOM; scrolling and sorting bring the others in."""
    for n in range(300):
        details = DeviceDetails(f"big-{n:03d}.lan", "1.0", "linux")
        await hub.hub.presence.ws_connected(f"big-{n:03d}", details)
    await expect(dashboard.locator("#counts")).to_have_text("300 online · 0 offline · 300 devices")
    rows = dashboard.locator("#fleet tbody tr")
    last = dashboard.locator('#fleet tr[data-device-id="big-299"]')
    await expect(rows.first).to_have_attribute("data-device-id", "big-000")
    in_dom = await rows.count()
    assert 10 <= in_dom < 60, in_dom  # 900 px of viewport and a few rows of overscan, not 300
    await expect(last).to_have_count(0)
    height = await dashboard.evaluate("document.documentElement.scrollHeight")
    assert height > 300 * 30, height  # the padding rows keep the page as tall as the whole list

    await dashboard.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    await expect(last).to_be_in_viewport()
    await expect(dashboard.locator('#fleet tr[data-device-id="big-000"]')).to_have_count(0)
    ids = await rows.evaluate_all("(trs) => trs.map((tr) => tr.dataset.deviceId)")
    assert ids == [f"big-{n:03d}" for n in range(300 - len(ids), 300)], ids  # in order, up to the last
    assert await last.get_attribute("aria-rowindex") == "301"  # the header is row 1

    await dashboard.locator('#fleet th[data-sort="device_id"] button').click()  # descending
    await dashboard.evaluate("window.scrollTo(0, 0)")
    await expect(rows.first).to_have_attribute("data-device-id", "big-299")
    await dashboard.get_by_label("Filter").fill("big-15")
    await expect(dashboard.locator("#counts")).to_contain_text("(10 shown)")  # big-150 to big-159
    shown = await rows.evaluate_all("(trs) => trs.map((tr) => tr.dataset.deviceId)")
    assert shown == [f"big-{n}" for n in range(159, 149, -1)], shown
