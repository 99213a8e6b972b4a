"""The hub's front door: ``GET /`` leads to the dashboard and ``/favicon.ico`` is served."""

from __future__ import annotations

import httpx

from tests.hubs import RunningHub


async def test_root_redirects_to_the_dashboard_without_auth(hub: RunningHub) -> None:
    """GET / without a token or cookie is a redirect to /ui, which then answers."""
    async with httpx.AsyncClient(base_url=hub.http_url) as anonymous:
        response = await anonymous.get("/")
        followed = await anonymous.get("/", follow_redirects=True)
    assert response.status_code in (302, 307) and response.headers["location"] == "/ui"
    assert followed.status_code == 200 and str(followed.url).endswith("/ui")


async def test_favicon_is_served_without_auth(hub: RunningHub) -> None:
    """GET /favicon.ico answers 200 with an SVG image, no login needed."""
    async with httpx.AsyncClient(base_url=hub.http_url) as anonymous:
        response = await anonymous.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.content.startswith(b"<svg") and b'xmlns="http://www.w3.org/2000/svg"' in response.content
