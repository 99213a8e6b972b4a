"""The alerts page's management (issue 14): an admin creates a threshold rule and a webhook notifier
from the page, an agent crosses the rule and the local receiver gets the firing notification; a
silence listed on the page is ended from it; a rule is edited with the notifiers it goes to; a
device is put in maintenance from its page and taken out early."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from websockets.asyncio.client import ClientConnection

from tests.agentd import eventually
from tests.agents import connect_agent
from tests.e2e.conftest import fresh_page
from tests.e2e.test_alerts_view import RULE, Metrics
from tests.e2e.test_dashboard_roles import add_user, logged_in
from tests.hubs import RunningHub
from tests.integration.test_alerts import Receiver, _async, fast, started_receiver

pytestmark = pytest.mark.e2e


@pytest.fixture
async def agent(hub: RunningHub) -> AsyncIterator[ClientConnection]:
    ws = await connect_agent(hub, "web-7")
    try:
        yield ws
    finally:
        await ws.close()


@pytest.fixture
async def viewer_page(browser: Browser) -> AsyncIterator[Page]:
    """A second browser context (its own cookies) for a viewer beside the admin."""
    async with fresh_page(browser) as opened:
        yield opened


@pytest.fixture
async def listening() -> AsyncIterator[Receiver]:
    async with started_receiver() as started:
        yield started


async def test_an_admin_creates_a_rule_and_a_webhook_from_the_page_and_gets_notified(
    dashboard: Page, hub: RunningHub, api: httpx.AsyncClient, agent: ClientConnection, listening: Receiver
) -> None:
    page, metrics = dashboard, Metrics(agent)
    fast(hub)
    await page.get_by_role("link", name="Alerts").click()
    await expect(page.locator("#alert-rules")).to_have_text("No rules.")

    rule = page.locator("#rule-form")
    await rule.get_by_label("Name").fill("cpu busy")
    await rule.get_by_label("Metric").fill("cpu")
    await rule.get_by_label("Value", exact=True).fill("50")
    await rule.get_by_label("Clear value").fill("40")
    await rule.get_by_label("Severity").select_option("critical")
    await rule.get_by_label("Devices").fill("web-7")
    await rule.get_by_role("button", name="Create rule").click()
    await expect(page.locator("#alerts-admin-status")).to_have_text("Rule cpu busy created.")
    await expect(page.locator("#alert-rules")).to_contain_text(
        "cpu > 50 (clear 40) for 0 s · critical · devices web-7"
    )

    hook = page.locator("#notifier-form")
    await hook.get_by_label("Name").fill("ops")
    await hook.get_by_label("URL").fill(listening.url)
    await hook.get_by_role("button", name="Create notifier").click()
    await expect(page.locator("#alert-notifiers")).to_contain_text(f"http://127.0.0.1:{listening.port}/...")
    await expect(page.locator("#alert-notifiers")).not_to_contain_text("s3cret")

    await metrics.cpu(80)
    await eventually(lambda: _async(listening.bodies), within=10, what="the firing notification")
    (alert,) = listening.bodies[0]["alerts"]
    assert alert["status"] == "firing" and alert["labels"]["alertname"] == "cpu busy"
    assert alert["labels"]["device"] == "web-7" and alert["labels"]["severity"] == "critical"

    await page.get_by_role("button", name="Delete rule cpu busy").click()
    await expect(page.locator("#alert-rules")).to_have_text("No rules.")
    assert (await api.get("/alert-rules")).json()["rules"] == []


async def test_a_silence_listed_is_ended_from_the_page(dashboard: Page, api: httpx.AsyncClient) -> None:
    page = dashboard
    made = await api.post(
        "/silences",
        json={"matchers": {"device": "web-9"}, "ends_at": time.time() + 3600, "comment": "maintenance"},
    )
    assert made.status_code == 201, made.text
    await page.get_by_role("link", name="Alerts").click()
    silences = page.locator("#alert-silences")
    await expect(silences).to_contain_text("device=web-9 · maintenance")
    await page.get_by_role("button", name=f"End silence {made.json()['id']}").click()
    await expect(silences).to_have_text("No active silences.")
    assert (await api.get("/silences")).json()["silences"] == []


async def test_a_viewer_sees_rules_and_silences_without_forms(
    page: Page, hub: RunningHub, api: httpx.AsyncClient
) -> None:
    await add_user(api, "vera", "viewer")
    rule = {"name": "gone", "kind": "offline", "for": 60}
    assert (await api.post("/alert-rules", json=rule)).status_code == 201
    silence = {"matchers": {"device": "web-9"}, "ends_at": time.time() + 3600, "comment": "maintenance"}
    assert (await api.post("/silences", json=silence)).status_code == 201
    await logged_in(page, hub, "vera", "viewer")
    await page.get_by_role("link", name="Alerts").click()
    await expect(page.locator("#alert-rules")).to_contain_text("gone · offline for 60 s · all devices")
    await expect(page.locator("#alert-silences")).to_contain_text("device=web-9 · maintenance")
    await expect(page.locator("#rule-form")).to_be_hidden()
    await expect(page.locator("#notifier-form")).to_be_hidden()
    await expect(page.locator("#alert-notifiers")).to_be_hidden()
    await expect(page.get_by_role("button", name="End silence 1")).to_have_count(0)
    await expect(page.get_by_role("button", name="Delete rule gone")).to_have_count(0)


async def test_an_admin_edits_a_rule_and_its_notifiers_and_an_operator_puts_a_device_in_maintenance(
    dashboard: Page,
    hub: RunningHub,
    api: httpx.AsyncClient,
    agent: ClientConnection,
    listening: Receiver,
    viewer_page: Page,
) -> None:
    """Alerts page: the rule is edited (value, routed to pager only) with PATCH; the agent crosses
    it and only pager's receiver is notified. Device page: maintenance until a time with a comment
    is a silence of the device; it shows, silences the device's alert, a viewer sees it without the
    controls, and it is ended early from the page."""
    page, metrics, pager_receiver = dashboard, Metrics(agent), Receiver()
    fast(hub)
    await pager_receiver.start()
    try:
        ops = (
            await api.post("/notifiers", json={"name": "ops", "kind": "webhook", "url": listening.url})
        ).json()
        pager_url = pager_receiver.url
        pager = (
            await api.post("/notifiers", json={"name": "pager", "kind": "webhook", "url": pager_url})
        ).json()
        rule = {**RULE_BODY, "notifiers": [ops["id"]]}
        made = await api.post("/alert-rules", json=rule)
        assert made.status_code == 201, made.text

        await page.get_by_role("link", name="Alerts").click()
        rules = page.locator("#alert-rules")
        await expect(rules).to_contain_text("cpu > 50 (clear 40) for 0 s · critical · devices web-7 · to ops")
        await page.get_by_role("button", name="Edit rule cpu busy").click()
        form = page.locator("#rule-form")
        await expect(form.get_by_label("Name")).to_have_value("cpu busy")
        await expect(form.get_by_label("ops")).to_be_checked()
        await form.get_by_label("Value", exact=True).fill("60")
        await form.get_by_label("ops").uncheck()
        await form.get_by_label("pager").check()
        await form.get_by_role("button", name="Save rule").click()
        await expect(page.locator("#alerts-admin-status")).to_have_text("Rule cpu busy saved.")
        await expect(rules).to_contain_text(
            "cpu > 60 (clear 40) for 0 s · critical · devices web-7 · to pager"
        )
        await expect(form.get_by_role("button", name="Create rule")).to_be_visible()
        stored = (await api.get(f"/alert-rules/{made.json()['id']}")).json()
        assert (stored["value"], stored["notifiers"]) == (60, [pager["id"]])

        await metrics.cpu(80)
        await eventually(lambda: _async(pager_receiver.bodies), within=10, what="pager's notification")
        await eventually(lambda: _outbox_empty(hub), within=5, what="the outbox delivered")
        assert pager_receiver.statuses() == ["firing"] and listening.bodies == []

        await page.goto(hub.http_url + "/ui#/device/web-7")
        device_alerts = page.locator("#device-alerts")
        await expect(device_alerts).to_contain_text("cpu busy · critical · firing")
        maintenance = page.locator("#device-maintenance")
        await expect(maintenance.locator("#maintenance-list")).to_have_text("Not under maintenance.")
        await maintenance.get_by_label("Comment").fill("kernel upgrade")
        await maintenance.get_by_role("button", name="Start maintenance").click()
        await expect(maintenance.locator("#maintenance-list")).to_contain_text("Under maintenance until")
        await expect(maintenance.locator("#maintenance-list")).to_contain_text("kernel upgrade")
        await expect(device_alerts).to_contain_text("firing · silenced")
        (silence,) = (await api.get("/silences")).json()["silences"]
        assert silence["matchers"] == {"device": "web-7"} and silence["comment"] == "kernel upgrade"
        ends_in = datetime.fromisoformat(silence["ends_at"]).timestamp() - time.time()
        assert 3600 < ends_in <= 7200  # the form's default: two hours from now, to the minute

        await add_user(api, "vera", "viewer")
        viewer = await logged_in(viewer_page, hub, "vera", "viewer")
        await viewer.goto(hub.http_url + "/ui#/device/web-7")
        await expect(viewer.locator("#maintenance-list")).to_contain_text("kernel upgrade")
        await expect(viewer.locator("#maintenance-form")).to_be_hidden()
        await expect(viewer.get_by_role("button", name=f"End maintenance {silence['id']}")).to_have_count(0)

        await maintenance.get_by_role("button", name=f"End maintenance {silence['id']}").click()
        await expect(maintenance.locator("#maintenance-status")).to_have_text("Maintenance ended.")
        await expect(maintenance.locator("#maintenance-list")).to_have_text("Not under maintenance.")
        await expect(device_alerts).not_to_contain_text("silenced")
        assert (await api.get("/silences")).json()["silences"] == []
    finally:
        await pager_receiver.close()


RULE_BODY = {**RULE, "selector": {"devices": ["web-7"]}}


async def _outbox_empty(hub: RunningHub) -> bool:
    return await hub.hub.store.pending_notifications() == []
