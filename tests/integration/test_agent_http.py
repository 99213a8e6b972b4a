"""`--transport http` against the same hub: the seed's REST contract, both ways."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from tests.agentd import (
    acked,
    device,
    enqueue,
    eventually,
    http_transport,
    samples,
    start_local_agent,
)
from tests.hubs import RunningHub


async def test_http_transport_ingests_polls_and_acks(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Samples go through POST /ingest; a queued command is polled, run and acked over REST."""
    transport = http_transport(hub.http_url, hub.token)
    local = start_local_agent(tmp_path, transport, device_id="http-agent")
    try:

        async def stored() -> list[dict[str, object]]:
            found = await samples(api, "http-agent")
            return found if len(found) >= 2 else []

        found = await eventually(stored, what="samples over REST")
        assert "cpu" in found[-1] and "net_rx_bps" in found[-1]
        entry = await device(api, "http-agent")
        assert entry is not None and entry["online"] and entry["connection"] == "http"
        cid = await enqueue(api, "http-agent", "echo", {"n": 1})
        done = await eventually(lambda: acked(api, "http-agent", cid), what="echo acked")
        assert done["success"] is True and '"n":1' in str(done["message"])
        assert local.agent.unconfirmed_acks() == []
        again = await api.get("/devices/http-agent/commands/next")
        assert again.json() is None
    finally:
        await local.stop()


async def test_http_transport_wrong_token_waits(
    hub: RunningHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 over REST is logged as a token problem and retried after the slow delay."""
    caplog.set_level(logging.ERROR, logger="monitor_agent")
    transport = http_transport(hub.http_url, "nope", auth_retry_delay=30.0)
    local = start_local_agent(tmp_path, transport, device_id="http-badtoken")
    try:
        await eventually(_has_token_error(caplog), what="token error logged")
        assert not transport.connected.is_set()
    finally:
        await local.stop()


def _has_token_error(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return any("HTTP 401" in r.getMessage() and "token" in r.getMessage() for r in caplog.records)

    return probe
