"""Apprise notifiers (DESIGN §11) with a real local receiver: apprise's ``json://`` posts a JSON
message to the HTTP server the test starts, through the same outbox (retries) as webhooks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.agentd import eventually
from tests.hubs import RunningHub
from tests.integration.test_alerts import (
    CPU_RULE,
    Receiver,
    _async,
    _attempted,
    _queued,
    fast,
    ingest,
    started_receiver,
)
from tests.processes import free_port


@pytest.fixture
async def listening() -> AsyncIterator[Receiver]:
    async with started_receiver() as started:
        yield started


async def _apprise(api: httpx.AsyncClient, receiver: Receiver) -> dict[str, Any]:
    url = f"json://127.0.0.1:{receiver.port}/hook/s3cret-path"
    created = await api.post("/notifiers", json={"name": "phone", "kind": "apprise", "url": url})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def _messages(receiver: Receiver) -> list[str]:
    return [str(body["message"]) for body in receiver.bodies]


async def test_apprise_firing_then_resolved_arrive_once_each(
    hub: RunningHub, api: httpx.AsyncClient, listening: Receiver
) -> None:
    """for 0: the firing then the resolved text arrive once each; the URL is shown redacted."""
    receiver = listening
    fast(hub)
    notifier = await _apprise(api, receiver)
    assert notifier["kind"] == "apprise" and notifier["url"] == f"json://127.0.0.1:{receiver.port}/..."
    listed = (await api.get("/notifiers")).json()["notifiers"]
    assert "s3cret" not in str(listed)
    assert (await api.post("/alert-rules", json={**CPU_RULE, "for": 0})).status_code == 201
    await ingest(api, "web-1", 95)
    await eventually(lambda: _async(receiver.bodies), within=10, what="the firing message")
    await ingest(api, "web-1", 50)
    await eventually(lambda: _async(len(receiver.bodies) >= 2), within=10, what="the resolved message")
    await ingest(api, "web-1", 60)
    assert _messages(receiver) == [
        "[FIRING] cpu high (critical): web-1",
        "[RESOLVED] cpu high (critical): web-1",
    ]
    assert receiver.bodies[0]["title"] == "monitor: 1 firing"
    assert receiver.bodies[1]["title"] == "monitor: 1 resolved"


async def test_apprise_receiver_down_then_up_still_gets_them(
    hub: RunningHub, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused while both are queued: the outbox retries, both arrive once, in order."""
    caplog.set_level(logging.DEBUG)
    fast(hub)
    receiver = Receiver(free_port())  # not listening yet: connection refused
    try:
        await _apprise(api, receiver)
        assert (await api.post("/alert-rules", json={**CPU_RULE, "for": 0})).status_code == 201
        for n, cpu in enumerate((95, 50), start=1):
            await ingest(api, "db-1", cpu)
            await eventually(lambda n=n: _queued(hub, n), within=10, what=f"notification {n} queued")
        await eventually(lambda: _attempted(hub), within=10, what="a failed attempt")
        await receiver.start()
        await eventually(lambda: _async(len(receiver.bodies) >= 2), within=15, what="both messages")
        assert _messages(receiver) == [
            "[FIRING] cpu high (critical): db-1",
            "[RESOLVED] cpu high (critical): db-1",
        ]
        assert "apprise: not delivered" in caplog.text
        # every logger at DEBUG but aiosqlite's (its DEBUG log shows SQL parameters, any column)
        leaks = [r for r in caplog.records if "s3cret" in r.getMessage() and r.name != "aiosqlite"]
        assert leaks == []
    finally:
        await receiver.close()


async def test_apprise_url_checked_and_webhook_still_http_only(api: httpx.AsyncClient) -> None:
    bad = await api.post("/notifiers", json={"name": "x", "kind": "apprise", "url": "nosuchservice://a/b"})
    assert bad.status_code == 422, bad.text
    ftp = await api.post("/notifiers", json={"name": "y", "kind": "webhook", "url": "ntfy://topic"})
    assert ftp.status_code == 422, ftp.text
    ok = await api.post("/notifiers", json={"name": "z", "kind": "apprise", "url": "ntfy://my-topic"})
    assert ok.status_code == 201 and ok.json()["url"] == "ntfy://my-topic/..."
