"""Wrong tokens are throttled per client address on every way in, without locking out other addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.hubs import RunningHub
from tests.timing import t

LIMIT = 20  # MONITOR_AUTH_MAX_FAILURES' default
OTHER = "127.0.0.2"  # a second loopback address: another client, not a configured proxy


def client(hub: RunningHub, source: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client for ``hub`` whose connections come from ``source``."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=hub.http_url, transport=transport, **kwargs)


@pytest.fixture
async def here(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    """A client from 127.0.0.1."""
    async with client(hub) as http:
        yield http


@pytest.fixture
async def there(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    """A client from 127.0.0.2."""
    async with client(hub, OTHER) as http:
        yield http


async def guess(http: httpx.AsyncClient, times: int, **headers: str) -> None:
    """``times`` wrong tokens on GET /devices, each answered 401."""
    for n in range(times):
        response = await http.get("/devices", headers={"X-Auth-Token": f"guess-{n}", **headers})
        assert response.status_code == 401, (n, response.status_code)


def assert_locked_out(response: httpx.Response) -> None:
    assert response.status_code == 429, response.status_code
    assert int(response.headers["retry-after"]) >= 1
    assert "retry in" in response.json()["detail"]


async def ws_status(hub: RunningHub, url: str, source: str = "127.0.0.1", **headers: str) -> int:
    """The status a WebSocket upgrade from ``source`` gets (101 when accepted)."""
    try:
        async with connect(url, additional_headers=headers, local_addr=(source, 0), open_timeout=t(5)):
            return 101
    except InvalidStatus as refused:
        response = refused.response
    if response.status_code == 429:  # a lockout always says how long
        assert int(response.headers["Retry-After"]) >= 1
    return response.status_code


async def test_wrong_tokens_on_rest_lock_out_that_address_only(
    hub: RunningHub, here: httpx.AsyncClient, there: httpx.AsyncClient
) -> None:
    """After 20 wrong tokens an address gets 429 everywhere, even with the right token; others do not."""
    await guess(here, LIMIT)
    assert_locked_out(await here.get("/devices", headers={"X-Auth-Token": "guess-again"}))
    assert_locked_out(await here.get("/devices", headers={"X-Auth-Token": hub.token}))
    ui_url = hub.ws_url.replace("/ws/agent", "/ws/ui")
    assert await ws_status(hub, hub.ws_url, **{"X-Auth-Token": hub.token}) == 429
    assert await ws_status(hub, ui_url) == 429

    assert (await there.get("/devices", headers={"X-Auth-Token": hub.token})).status_code == 200
    assert (await there.get("/devices", headers={"X-Auth-Token": "one-typo"})).status_code == 401
    assert await ws_status(hub, hub.ws_url, OTHER, **{"X-Auth-Token": hub.token}) == 101
    # The other address's success did not clear this one's count.
    assert_locked_out(await here.get("/devices", headers={"X-Auth-Token": hub.token}))


async def test_missing_token_is_not_counted(hub: RunningHub, here: httpx.AsyncClient) -> None:
    """Requests with no token at all are 401 but never lock the address out: they guess nothing."""
    for _ in range(LIMIT * 2):
        assert (await here.get("/devices")).status_code == 401
    assert (await here.get("/devices", headers={"X-Auth-Token": hub.token})).status_code == 200


async def test_forwarded_for_from_an_untrusted_client_is_ignored(
    hub: RunningHub, there: httpx.AsyncClient, here: httpx.AsyncClient
) -> None:
    """X-Forwarded-For from a client that is not a configured proxy does not change the address counted."""
    for n in range(LIMIT):
        spoofed = {"X-Auth-Token": "guess", "X-Forwarded-For": f"203.0.113.{n + 1}"}
        assert (await there.get("/devices", headers=spoofed)).status_code == 401
    fresh = {"X-Auth-Token": hub.token, "X-Forwarded-For": "203.0.113.200"}
    assert_locked_out(await there.get("/devices", headers=fresh))
    assert (await here.get("/devices", headers={"X-Auth-Token": hub.token})).status_code == 200


async def test_forwarded_for_from_the_trusted_proxy_names_the_client(
    hub: RunningHub, here: httpx.AsyncClient
) -> None:
    """Through a configured proxy (127.0.0.1 by default) each forwarded client is counted on its own."""
    await guess(here, LIMIT, **{"X-Forwarded-For": "198.51.100.7"})
    locked = {"X-Auth-Token": hub.token, "X-Forwarded-For": "198.51.100.7"}
    assert_locked_out(await here.get("/devices", headers=locked))
    other = {"X-Auth-Token": hub.token, "X-Forwarded-For": "198.51.100.8"}
    assert (await here.get("/devices", headers=other)).status_code == 200


async def test_wrong_tokens_on_agent_socket_are_throttled(hub: RunningHub) -> None:
    """/ws/agent answers 401 to 20 wrong tokens from an address, then 429 with Retry-After; others connect."""
    for n in range(LIMIT):
        assert await ws_status(hub, hub.ws_url, **{"X-Auth-Token": f"guess-{n}"}) == 401
    assert await ws_status(hub, hub.ws_url, **{"X-Auth-Token": "guess-more"}) == 429
    assert await ws_status(hub, hub.ws_url, **{"Authorization": f"Bearer {hub.token}"}) == 429
    assert await ws_status(hub, hub.ws_url, OTHER, **{"X-Auth-Token": hub.token}) == 101


async def test_login_brute_force_does_not_lock_out_the_right_user(
    hub: RunningHub, here: httpx.AsyncClient, there: httpx.AsyncClient
) -> None:
    """Wrong tokens on the login form lock out their own address, not the right user at another one."""
    for _ in range(10):
        assert (await there.post("/ui/login", data={"token": "guess"})).status_code == 401
    assert (await there.post("/ui/login", data={"token": hub.token})).status_code == 429
    assert (await here.post("/ui/login", data={"token": hub.token})).status_code == 303
