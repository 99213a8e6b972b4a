"""A socket replaced while the hub is still recording its hello gets no welcome, and nothing fails.

The devices table is held locked so the first hello's presence write waits; a second connection
of the same device replaces the first meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from websockets.asyncio.client import connect

from monitor_server.sessions import SessionRegistry
from tests.agentd import eventually
from tests.conftest import HubFactory
from tests.hubs import TOKEN
from tests.timing import t


def _holder(sessions: SessionRegistry, other_than: object = None) -> Callable[[], Awaitable[object]]:
    async def probe() -> object:
        socket = sessions.get("race-1")
        return socket if socket is not None and socket is not other_than else None

    return probe


def hello(device_id: str) -> str:
    return json.dumps({"type": "hello", "protocol": 1, "device_id": device_id})


async def test_replaced_while_recording_gets_no_welcome(
    pg_url: str, hub_factory: HubFactory, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await hub_factory(db=pg_url)
    headers = {"X-Auth-Token": TOKEN}
    admin = await asyncpg.connect(pg_url)
    try:
        async with connect(hub.ws_url, additional_headers=headers) as first:
            lock = admin.transaction()
            await lock.start()
            await admin.execute("LOCK TABLE devices IN EXCLUSIVE MODE")
            await first.send(hello("race-1"))
            sessions = hub.hub.sessions
            held = await eventually(_holder(sessions), what="the first hello registered")
            async with connect(hub.ws_url, additional_headers=headers) as second:
                await second.send(hello("race-1"))
                await eventually(_holder(sessions, other_than=held), what="the second replaced it")
                await lock.rollback()  # the first resumes recording its hello: replaced meanwhile
                assert json.loads(await asyncio.wait_for(second.recv(), t(5)))["type"] == "welcome"
                await asyncio.wait_for(first.wait_closed(), t(5))
            assert first.close_code == 4000
    finally:
        await admin.close()
    assert "Exception in ASGI application" not in caplog.text
