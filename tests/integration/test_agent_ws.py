"""The agent against a real hub over a real WebSocket: metrics, outages, commands, auth."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from monitor_agent.config import HostCommand
from monitor_agent.connection import LinkState
from monitor_agent.executor import CommandExecutor
from monitor_agent.handlers import Handlers
from monitor_agent.journal import FileJournal
from tests.agentd import (
    LocalAgent,
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


class ScriptedHub:
    """A real WebSocket server playing the hub's side of /ws/agent, answering only as a test says.

    It welcomes every hello and records each sample it receives as ``(connection, seq, ts)``;
    ``stored`` and ``error`` frames go out only when the test sends them (or, with
    ``store_after``, that many seconds after each samples frame, like a slow commit).
    """

    def __init__(self, store_after: float | None = None) -> None:
        self.store_after = store_after
        self.hellos: list[dict[str, Any]] = []
        self.received: list[tuple[int, int, float]] = []
        self.close_codes: list[int | None] = []
        self.current: ServerConnection | None = None
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws/agent"

    async def __aenter__(self) -> ScriptedHub:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def seen(self, connection: int) -> list[tuple[int, float]]:
        """(seq, ts) of the samples received on connection number ``connection`` (from 1)."""
        return [(seq, ts) for conn, seq, ts in self.received if conn == connection]

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.current is not None
        await self.current.send(json.dumps(frame))

    async def _handle(self, ws: ServerConnection) -> None:
        hello = json.loads(await ws.recv())
        self.hellos.append(hello)
        number = len(self.hellos)
        welcome = {
            "type": "welcome",
            "protocol": 1,
            "device_id": hello["device_id"],
            "heartbeat_interval": 30,
            "ping_interval": 0,
            "ping_timeout": 0,
            "max_frame_bytes": 1 << 20,
            "server_time": "2026-01-01T00:00:00Z",
        }
        await ws.send(json.dumps(welcome))
        self.current = ws
        try:
            async with asyncio.TaskGroup() as later:
                async for raw in ws:
                    last = self._record(number, json.loads(raw))
                    if last is not None and self.store_after is not None:
                        later.create_task(self._store_later(ws, last))
        finally:
            self.close_codes.append(ws.close_code)

    def _record(self, number: int, frame: dict[str, Any]) -> int | None:
        if frame["type"] == "metrics":
            batch, first = [frame], frame["seq"]
        elif frame["type"] == "metrics_batch":
            batch, first = frame["samples"], frame["seq"]
        else:
            return None
        for offset, sample in enumerate(batch):
            self.received.append((number, first + offset, sample["ts"]))
        return int(first) + len(batch) - 1

    async def _store_later(self, ws: ServerConnection, seq: int) -> None:
        assert self.store_after is not None
        await asyncio.sleep(self.store_after)  # the hub's commit taking its time
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "stored", "seq": seq}))


def spooled_stamps(local: LocalAgent) -> list[float]:
    return [sample["ts"] for _, sample in local.agent.spool.peek(100_000)]


async def test_samples_stay_spooled_until_stored_and_the_window_is_bounded(tmp_path: Path) -> None:
    """Nothing leaves the spool before stored; at most `window` batches wait; stored N frees seq <= N."""
    async with ScriptedHub() as hub:
        transport = ws_transport(hub.url, "t", batch_size=2, window=2, flush_timeout=0.3)
        local = start_local_agent(tmp_path, transport, device_id="ws-window", interval=0.05)
        try:
            await eventually(_async(lambda: len(hub.seen(1)) >= 4), what="4 samples sent")
            await eventually(_async(lambda: len(local.agent.spool) >= 10), what="10 samples spooled")
            first = hub.seen(1)
            assert [seq for seq, _ in first] == [1, 2, 3, 4], "window: 2 batches of 2, then nothing"
            assert {ts for _, ts in first} <= set(spooled_stamps(local)), "sent is not stored"
            assert "stored_acks" in hub.hellos[0]["capabilities"]

            await hub.send({"type": "stored", "seq": 2})
            await eventually(_async(lambda: len(hub.seen(1)) >= 6), what="2 more sent once 2 are stored")
            left = set(spooled_stamps(local))
            assert first[0][1] not in left and first[1][1] not in left
            assert first[2][1] in left and first[3][1] in left
        finally:
            await local.stop()


async def test_reconnect_resends_what_was_not_stored(tmp_path: Path) -> None:
    """Samples sent on a connection that closed before stored are sent again, oldest first, seq from 1."""
    async with ScriptedHub() as hub:
        transport = ws_transport(hub.url, "t", batch_size=2, window=2, flush_timeout=0.3)
        local = start_local_agent(tmp_path, transport, device_id="ws-resend", interval=0.05)
        try:
            await eventually(_async(lambda: len(hub.seen(1)) >= 4), what="4 samples sent")
            assert hub.current is not None
            await hub.current.close(1012, "hub restart")
            await eventually(_async(lambda: len(hub.seen(2)) >= 4), what="resent after reconnecting")
            assert hub.seen(2)[:4] == [(seq, ts) for seq, (_, ts) in enumerate(hub.seen(1)[:4], 1)]
        finally:
            await local.stop()


async def test_invalid_sample_error_drops_that_sample_only(tmp_path: Path) -> None:
    """An invalid_sample error naming a seq removes that sample from the spool; the others wait for stored."""
    async with ScriptedHub() as hub:
        transport = ws_transport(hub.url, "t", batch_size=2, window=2, flush_timeout=0.3)
        local = start_local_agent(tmp_path, transport, device_id="ws-refused", interval=0.05)
        try:
            await eventually(_async(lambda: len(hub.seen(1)) >= 4), what="4 samples sent")
            (_, refused), *kept = hub.seen(1)[:4]
            await hub.send({"type": "error", "code": "invalid_sample", "message": "no", "seq": 1})
            await eventually(
                _async(lambda: refused not in spooled_stamps(local)), what="refused sample dropped"
            )
            assert {ts for _, ts in kept} <= set(spooled_stamps(local))
        finally:
            await local.stop()


async def test_stop_waits_for_stored_and_leaves_nothing_spooled(tmp_path: Path) -> None:
    """On SIGTERM-like stop the agent flushes and waits for the hub's (slow) stored, then closes with 1000."""
    async with ScriptedHub(store_after=0.3) as hub:
        local = start_local_agent(tmp_path, ws_transport(hub.url, "t"), device_id="ws-flush", interval=0.05)
        await eventually(_async(lambda: len(hub.seen(1)) >= 5), what="samples sent")
        await local.stop()
        assert len(local.agent.spool) == 0
        await eventually(_async(lambda: hub.close_codes == [1000]), what="closed with 1000")
