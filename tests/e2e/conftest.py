"""Headless Chromium (the system's /usr/bin/chromium, never a downloaded one) driven by Playwright.

The browser runs in the test's event loop next to the in-process hub. Without Chromium a
developer's run skips these tests with the reason; in CI (``CI`` set) that is a failure.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.hubs import RunningHub
from tests.timing import t

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()  # checked once at import, not inside the event loop
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
COOKIE = "monitor_session"


def ms(seconds: float) -> float:
    """A Playwright timeout (milliseconds), scaled like every test timing."""
    return t(seconds) * 1000


expect.set_options(timeout=ms(5))  # every expect() waits on the event, scaled for slow machines


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """The system Chromium, headless; skip without it, except in CI where it must exist."""
    if not HAVE_CHROMIUM:
        reason = f"{CHROMIUM} is missing: install Debian's chromium package to run the dashboard tests"
        if os.environ.get("CI"):
            pytest.fail(reason + " (required in CI)")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.asynccontextmanager
async def fresh_page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser context (no cookies: another person at another desk), a desktop-sized page."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(ms(10))
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with fresh_page(browser) as opened:
        yield opened


async def log_in(page: Page, hub: RunningHub, token: str | None = None) -> None:
    """Fill the hub token form the way an operator does."""
    await page.goto(hub.http_url + "/ui")
    await page.get_by_label("Hub token").fill(token if token is not None else hub.token)
    await page.get_by_role("button", name="Log in with token").click()


async def log_in_as(page: Page, hub: RunningHub, name: str, password: str) -> None:
    """Fill the name and password form, as a user does."""
    await page.goto(hub.http_url + "/ui")
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Log in", exact=True).click()


@pytest.fixture
async def dashboard(page: Page, hub: RunningHub) -> Page:
    """A logged-in page showing the fleet view with its socket live."""
    await log_in(page, hub)
    await expect(page.locator("#link-state")).to_have_text("live", timeout=ms(10))
    return page


@pytest.fixture
async def session_cookie(hub: RunningHub) -> str:
    """A valid session cookie obtained through the login form, for non-browser clients."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        response = await client.post("/ui/login", data={"token": hub.token})
    assert response.status_code == 303
    return response.cookies[COOKIE]
