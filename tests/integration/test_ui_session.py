"""The dashboard's cookie on the REST API: reads with the cookie, writes only with header and Origin."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme

from monitor_server.ui.session import COOKIE_NAME
from tests.conftest import HubFactory
from tests.hubs import RunningHub

COOKIE = "monitor_session"
UI = {"X-Monitor-UI": "1"}


@pytest.fixture
async def browser_like(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    """A client that logged in through the form and holds only the session cookie."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        response = await client.post("/ui/login", data={"token": hub.token})
        assert response.status_code == 303 and response.headers["location"] == "/ui"
        yield client


async def test_cookie_reads_the_api(browser_like: httpx.AsyncClient) -> None:
    """GET /devices works with the session cookie alone, no token."""
    assert (await browser_like.get("/devices")).status_code == 200


async def test_cookie_writes_need_the_header_and_our_origin(
    hub: RunningHub, browser_like: httpx.AsyncClient
) -> None:
    """A cookie-only POST is refused without X-Monitor-UI or from a foreign Origin (CSRF)."""
    body = {"command": "ping"}
    bare = await browser_like.post("/devices/d1/commands", json=body)
    foreign = await browser_like.post(
        "/devices/d1/commands", json=body, headers={**UI, "Origin": "https://evil.example"}
    )
    ours = await browser_like.post("/devices/d1/commands", json=body, headers={**UI, "Origin": hub.http_url})
    assert (bare.status_code, foreign.status_code, ours.status_code) == (401, 401, 200)


async def test_logout_revokes_a_copied_cookie(hub: RunningHub, browser_like: httpx.AsyncClient) -> None:
    """After logout even a saved copy of the cookie no longer opens the API."""
    saved = browser_like.cookies[COOKIE]
    response = await browser_like.post("/ui/logout", headers={"Origin": hub.http_url})
    assert response.status_code == 303 and 'monitor_session=""' in response.headers["set-cookie"]
    async with httpx.AsyncClient(base_url=hub.http_url, cookies={COOKIE: saved}) as thief:
        assert (await thief.get("/devices")).status_code == 401


async def test_cookie_attributes(hub: RunningHub) -> None:
    """HttpOnly, SameSite=Strict, Path=/ and a Max-Age; not Secure over plain HTTP."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        header = (await client.post("/ui/login", data={"token": hub.token})).headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes and "secure" not in attributes
    assert "samesite=strict" in header.lower()


async def test_cookie_is_secure_over_tls(hub_factory: HubFactory, tmp_path: Path) -> None:
    """Served over HTTPS, the session cookie carries Secure."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "hub.crt", tmp_path / "hub.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    tls_hub = await hub_factory(tls_cert=cert, tls_key=key)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{tls_hub.port}", verify=context) as client:
        header = (await client.post("/ui/login", data={"token": tls_hub.token})).headers["set-cookie"]
    assert "secure" in header.lower()


async def test_login_form_from_another_site_is_refused(hub: RunningHub) -> None:
    """A login POST carrying a foreign Origin gets 403 and no cookie (login CSRF)."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        response = await client.post(
            "/ui/login", data={"token": hub.token}, headers={"Origin": "https://evil.example"}
        )
    assert response.status_code == 403 and "set-cookie" not in response.headers


async def test_repeated_wrong_tokens_are_throttled(hub: RunningHub) -> None:
    """After ten wrong tokens from one client the login form answers 429, even for the right one."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        for _ in range(10):
            assert (await client.post("/ui/login", data={"token": "guess"})).status_code == 401
        refused = await client.post("/ui/login", data={"token": hub.token})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Try again" in refused.text


async def test_login_page_drops_a_cookie_whose_session_ended(hub: RunningHub) -> None:
    """The login page served for an ended session's cookie also deletes that cookie."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        await client.post("/ui/login", data={"token": hub.token})
        assert COOKIE_NAME in client.cookies
        cookie = client.cookies[COOKIE_NAME]
        await client.post("/ui/logout")
        client.cookies.set(COOKIE_NAME, cookie)  # a browser that never applied the logout's answer
        page = await client.get("/ui")
    assert page.status_code == 200 and "set-cookie" in page.headers
    assert f"{COOKIE_NAME}=" in page.headers["set-cookie"] and "Max-Age=0" in page.headers["set-cookie"]
