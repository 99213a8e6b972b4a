"""Getting into the dashboard: login form, token check, one-time link, logout; the token never shows."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, Response, expect

from tests.agentd import eventually
from tests.e2e.conftest import COOKIE, log_in, ms
from tests.hubs import RunningHub

pytestmark = pytest.mark.e2e


async def test_unauthenticated_ui_shows_login(page: Page, hub: RunningHub) -> None:
    """Without a session, /ui is the login form and the fleet table is not there."""
    await page.goto(hub.http_url + "/ui")
    await expect(page.get_by_label("Hub token")).to_be_visible()
    await expect(page.locator("#fleet")).to_have_count(0)


async def test_wrong_token_is_refused(page: Page, hub: RunningHub) -> None:
    """A wrong token gets the form back with an error, and no session cookie."""
    await log_in(page, hub, token="not-the-token")
    await expect(page.get_by_role("alert")).to_have_text("Wrong token.")
    await expect(page.get_by_label("Hub token")).to_be_visible()
    assert COOKIE not in {c["name"] for c in await page.context.cookies()}


async def test_right_token_logs_in(page: Page, hub: RunningHub) -> None:
    """The right token sets a signed HttpOnly SameSite=Strict cookie and shows the live fleet."""
    await log_in(page, hub)
    await expect(page.locator("#fleet")).to_be_visible()
    await expect(page.locator("#link-state")).to_have_text("live", timeout=ms(10))
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    assert hub.token not in cookie["value"]


async def test_logout_clears_the_session(dashboard: Page, hub: RunningHub) -> None:
    """Log out drops the cookie, shows the login form, and a reload stays logged out."""
    await dashboard.get_by_role("button", name="Log out").click()
    await expect(dashboard.get_by_label("Hub token")).to_be_visible()

    async def cookie_gone() -> bool:  # the browser's cookie store may lag the page by a moment
        return COOKIE not in {c["name"] for c in await dashboard.context.cookies()}

    await eventually(cookie_gone, within=5, what="session cookie cleared")
    await dashboard.reload()
    await expect(dashboard.get_by_label("Hub token")).to_be_visible()


async def test_one_time_link_logs_in_once_and_leaves_the_url(page: Page, hub: RunningHub) -> None:
    """A login link sets the session, lands on /ui without the code, and cannot be reused."""
    assert hub.app is not None
    link = hub.app.state.dashboard.login_link(hub.http_url)
    await page.goto(link)
    await expect(page.locator("#link-state")).to_have_text("live", timeout=ms(10))
    assert page.url == hub.http_url + "/ui"
    await page.context.clear_cookies()
    await page.goto(link)
    await expect(page.get_by_role("alert")).to_contain_text("expired or was already used")


async def test_page_and_scripts_do_not_contain_the_token(page: Page, hub: RunningHub) -> None:
    """Nothing the hub sends the logged-in page (HTML, scripts, styles, REST, socket) holds the token."""
    bodies: list[tuple[str, bytes]] = []

    async def keep(response: Response) -> None:
        if response.request.resource_type != "document" or response.status == 200:
            bodies.append((response.url, await response.body()))

    page.on("response", keep)
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
    await log_in(page, hub)
    await expect(page.locator("#link-state")).to_have_text("live", timeout=ms(10))
    await page.goto(hub.http_url + "/ui#/device/nothing-here")
    await expect(page.locator("#device-title")).to_have_text("nothing-here")
    scripts = {url for url, _ in bodies if url.endswith(".js")}
    assert {"main.js", "live.js", "fleet.js", "device.js"} <= {url.rsplit("/", 1)[1] for url in scripts}
    for url, body in bodies:
        assert hub.token.encode() not in body, url
    assert frames and not any(hub.token in frame for frame in frames)
    assert hub.token not in await page.content()
    assert not re.search(r"https?://(?!127\.0\.0\.1)", await page.content())  # no CDN, nothing remote
