"""The agent against a real hub over a real WebSocket: metrics, outages, commands, auth."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from monitor_agent.config import HostCommand
from monitor_agent.connection import LinkState
from monitor_agent.executor import CommandExecutor
from monitor_agent.handlers import Handlers
from monitor_agent.journal import FileJournal
from tests.agentd import (
    acked,
    device,
    enqueue,
    eventually,
    free_port,
    samples,
    start_local_agent,
    ws_transport,
)
from tests.hubs import RunningHub


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def marker_command(path: Path) -> HostCommand:
    """A host command whose every run leaves one 'x' in ``path``."""
    return HostCommand(argv=[sys.executable, "-c", f"open({str(path)!r}, 'a').write('x')"])


async def test_metrics_from_a_running_agent_reach_the_hub(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Samples with the seed's and the richer fields appear in GET /devices/{id}/metrics."""
    local = start_local_agent(tmp_path, ws_transport(hub.ws_url, hub.token), device_id="ws-metrics")
    try:
        stored = await eventually(lambda: _at_least(api, "ws-metrics", 3), what="3 samples")
        latest = stored[-1]
        for key in ("cpu", "ram", "disk", "uptime_sec", "hostname", "mem_total", "net_rx_bps"):
            assert key in latest, key
        entry = await device(api, "ws-metrics")
        assert entry is not None and entry["online"] and entry["connection"] == "ws"
    finally:
        await local.stop()


async def _at_least(api: httpx.AsyncClient, device_id: str, count: int) -> list[dict[str, object]]:
    found = await samples(api, device_id)
    return found if len(found) >= count else []


async def test_hub_restart_leaves_no_gap(hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path) -> None:
    """Samples taken while the hub is down are replayed with their own timestamps: no gap."""
    interval = 0.2
    local = start_local_agent(
        tmp_path, ws_transport(hub.ws_url, hub.token), device_id="ws-gap", interval=interval
    )
    try:
        await eventually(lambda: _at_least(api, "ws-gap", 3), what="samples before the outage")
        await hub.stop()
        down_since = local.agent.spool.peek(1)[0][1]["ts"] if len(local.agent.spool) else None
        await eventually(_async(lambda: len(local.agent.spool) >= 6), what="6 spooled samples")
        assert local.transport.state is not LinkState.CONNECTED
        spooled_first = local.agent.spool.peek(1)[0][1]["ts"]
        await hub.start()
        async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as again:
            await eventually(_async(lambda: len(local.agent.spool) == 0), what="spool drained")
            await eventually(
                lambda: _stored_since(again, "ws-gap", spooled_first + 3 * interval),
                what="live samples after the replay",
            )
            stamps = [epoch(s["ts"]) for s in await samples(again, "ws-gap")]
    finally:
        await local.stop()
    assert down_since is None or down_since >= stamps[0]
    assert stamps == sorted(stamps)
    assert any(abs(ts - spooled_first) < 1e-3 for ts in stamps), "the first spooled sample is stored"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 2 * interval, f"largest gap {max(gaps):.2f}s"


def _async(check):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return bool(check())

    return probe


async def _stored_since(api: httpx.AsyncClient, device_id: str, since: float) -> bool:
    return any(epoch(s["ts"]) >= since for s in await samples(api, device_id))


async def test_command_runs_once_and_redelivery_is_answered_from_the_journal(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A REST command is run and acked; one the agent ran before crashing is not run again."""
    marker = tmp_path / "runs"
    commands = {"mark": marker_command(marker)}
    first = await enqueue(api, "ws-once", "mark")
    local = start_local_agent(
        tmp_path, ws_transport(hub.ws_url, hub.token), device_id="ws-once", host_commands=commands
    )
    try:
        done = await eventually(lambda: acked(api, "ws-once", first), what="first command acked")
        assert done["success"] is True and marker.read_text() == "x"
    finally:
        await local.stop()

    # The agent runs a second command and dies before its ack leaves: the journal has it.
    second = await enqueue(api, "ws-once", "mark")
    journal = FileJournal(tmp_path / "journal.jsonl")
    handlers = Handlers(commands, collect_now=_nothing, request_restart=lambda: None)
    ran = await CommandExecutor(journal, handlers).execute(second, "mark", None)
    journal.close()
    assert ran is not None and marker.read_text() == "xx"

    # The restarted agent gets it redelivered, answers from the journal, and does not run it.
    local = start_local_agent(
        tmp_path, ws_transport(hub.ws_url, hub.token), device_id="ws-once", host_commands=commands
    )
    try:
        done = await eventually(lambda: acked(api, "ws-once", second), what="redelivered acked")
        assert done["success"] is True and done["message"] == ran.message
        await eventually(_async(lambda: not local.agent.unconfirmed_acks()), what="acked frame")
    finally:
        await local.stop()
    assert marker.read_text() == "xx"


async def _nothing() -> None:
    return None


async def test_builtin_and_refused_commands_are_acked(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """ping/echo succeed; an unknown command and a not-allowed reboot are acked false."""
    local = start_local_agent(tmp_path, ws_transport(hub.ws_url, hub.token), device_id="ws-cmds")
    try:
        ids = {
            name: await enqueue(api, "ws-cmds", name, args)
            for name, args in [("ping", None), ("echo", {"k": "v"}), ("rm-rf", None), ("reboot", None)]
        }
        results = {
            name: await eventually(lambda cid=cid: acked(api, "ws-cmds", cid), what=name)
            for name, cid in ids.items()
        }
    finally:
        await local.stop()
    assert results["ping"]["success"] is True and results["ping"]["message"] == "pong"
    assert results["echo"]["success"] is True and '"k":"v"' in str(results["echo"]["message"])
    assert results["rm-rf"]["success"] is False and "unknown command" in str(results["rm-rf"]["message"])
    assert results["reboot"]["success"] is False and "not allowed" in str(results["reboot"]["message"])


async def test_wrong_token_is_logged_clearly_and_retried_slowly(
    hub: RunningHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused token gives one clear error line and a long wait, not a hot loop."""
    caplog.set_level(logging.ERROR, logger="monitor_agent")
    transport = ws_transport(hub.ws_url, "wrong-token", auth_retry_delay=30.0)
    local = start_local_agent(tmp_path, transport, device_id="ws-badtoken")
    try:
        await eventually(_async(lambda: transport.last_delay > 0), what="first refusal")
        assert transport.attempts == 1 and transport.last_delay >= 24.0
        lines = [r.getMessage() for r in caplog.records if "token" in r.getMessage()]
        assert lines and "HTTP 401" in lines[0] and "--token" in lines[0]
    finally:
        await local.stop()


async def test_hub_absent_at_start_then_connects(
    hub_factory: object, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """With no hub listening the agent backs off and retries, then connects when it comes."""
    port = free_port()
    late = RunningHub(tmp_path / "late" / "monitor.db")
    late.port = port
    transport = ws_transport(late.ws_url, late.token)
    local = start_local_agent(tmp_path / "agent", transport, device_id="ws-late")
    try:
        await eventually(_async(lambda: transport.attempts >= 3), what="several refused attempts")
        assert transport.state is not LinkState.CONNECTED and "onnect" in transport.last_failure
        await late.start()
        await eventually(_async(lambda: transport.state is LinkState.CONNECTED), what="connected")
        async with httpx.AsyncClient(base_url=late.http_url, headers={"X-Auth-Token": late.token}) as client:
            await eventually(lambda: _at_least(client, "ws-late", 1), what="a stored sample")
    finally:
        await local.stop()
        await late.stop()


async def test_slow_agent_keeps_the_hub_happy_with_heartbeats(hub_factory: object, tmp_path: Path) -> None:
    """With an interval longer than the hub's idle timeout, heartbeats keep the session up."""
    hub = await hub_factory(heartbeat_interval=0.2, ping_interval=0.5, ping_timeout=0.5)  # type: ignore[operator]
    transport = ws_transport(hub.ws_url, hub.token)
    local = start_local_agent(tmp_path, transport, device_id="ws-slow", interval=60)
    try:
        await eventually(_async(lambda: transport.heartbeats_sent >= 6), what="heartbeats")
        assert transport.connections == 1 and transport.state is LinkState.CONNECTED
    finally:
        await local.stop()


class FreezableProxy:
    """A real TCP forwarder that can go silent, like a hub host that vanished without a FIN."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = False
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.frozen:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.append(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.frozen:  # frozen: bytes vanish, nothing is closed
                writer.write(data)
                await writer.drain()
        writer.close()


async def test_silent_hub_is_noticed_by_pings_and_the_agent_reconnects(
    hub: RunningHub, tmp_path: Path
) -> None:
    """When the hub stops answering pings the agent drops the link and reconnects."""
    proxy = FreezableProxy(hub.port)
    await proxy.start()
    transport = ws_transport(f"ws://127.0.0.1:{proxy.port}/ws/agent", hub.token, flush_timeout=0.5)
    local = start_local_agent(tmp_path, transport, device_id="ws-silent", interval=0.2)
    try:
        await eventually(_async(lambda: transport.state is LinkState.CONNECTED), what="connected")
        proxy.frozen = True
        await eventually(
            _async(lambda: transport.state is not LinkState.CONNECTED), within=10, what="dead link noticed"
        )
        proxy.frozen = False
        await eventually(_async(lambda: transport.connections == 2), within=10, what="reconnected")
    finally:
        await local.stop()
        await proxy.stop()
