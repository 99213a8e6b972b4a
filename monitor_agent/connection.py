"""The WebSocket transport: hello/welcome, spool drain, commands in, acks out, reconnect forever.

One ``WsTransport`` per agent; it holds no process-global state, so a simulator can run
thousands side by side in one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from monitor_agent.backoff import Backoff
from monitor_agent.errors import HandshakeFailed, TokenRejected
from monitor_agent.result import CommandResult
from monitor_agent.spool import Sample
from monitor_agent.tls import describe_failure
from protocol.errors import FrameValidationError, IllegalTransition, ProtocolError
from protocol.wire import (
    PROTOCOL_VERSION,
    Acked,
    CommandFrame,
    ErrorFrame,
    Heartbeat,
    Hello,
    Metrics,
    MetricsBatch,
    SampleFields,
    Welcome,
    decode_hub_frame,
    encode,
)

if TYPE_CHECKING:
    from monitor_agent.agent import Agent

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_RESTART = 1012  # "service restart": the agent is re-executing itself


class LinkState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


_MOVES = {
    LinkState.DISCONNECTED: {LinkState.CONNECTING, LinkState.CLOSED},
    LinkState.CONNECTING: {LinkState.CONNECTED, LinkState.DISCONNECTED, LinkState.CLOSED},
    LinkState.CONNECTED: {LinkState.DISCONNECTED, LinkState.CLOSED},
    LinkState.CLOSED: set(),
}


def move(current: LinkState, target: LinkState) -> LinkState:
    """Return ``target`` if the link may go there from ``current``, else raise."""
    if target not in _MOVES[current]:
        raise IllegalTransition(f"link cannot go from {current} to {target}")
    return target


@dataclass(frozen=True)
class WsSettings:
    url: str
    token: str
    batch_size: int = 500
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    auth_retry_delay: float = 60.0
    connect_timeout: float = 10.0
    flush_timeout: float = 2.0
    max_frame_bytes: int = 1 << 20
    ssl_context: ssl.SSLContext | None = None  # for wss://; None uses websockets' default
    ca_file: Path | None = None  # only named in TLS error messages


class WsTransport:
    """Keeps one agent connected to ``/ws/agent``."""

    def __init__(self, settings: WsSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.state = LinkState.DISCONNECTED
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, rng or random.Random())
        self.rng = self.backoff.rng
        self.attempts = 0
        self.connections = 0
        self.heartbeats_sent = 0
        self.last_delay = 0.0
        self.last_failure = ""
        self.connected = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._acked = asyncio.Event()
        self._last_sent = 0.0

    def _set(self, target: LinkState) -> None:
        self.state = move(self.state, target)
        if target is LinkState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    async def run(self, agent: Agent) -> None:
        """Connect, serve, and reconnect with backoff until the agent stops."""
        try:
            while not agent.stopping.is_set():
                delay = await self._attempt(agent)
                if delay is not None:
                    await agent.wait_stopping(delay)
        finally:
            if self.state is not LinkState.CLOSED:
                self._set(LinkState.CLOSED)

    async def _attempt(self, agent: Agent) -> float | None:
        """One connection; returns how long to wait before the next one (None: stopping)."""
        self._set(LinkState.CONNECTING)
        self.attempts += 1
        name = agent.identity.device_id
        try:
            await self._session(agent)
        except TokenRejected as exc:
            self.last_failure = str(exc)
            delay = self.settings.auth_retry_delay * self.rng.uniform(0.8, 1.2)
            log.error(
                "%s: %s at %s: the agent token is wrong or missing (check --token / "
                "MONITOR_AGENT_TOKEN); retrying in %.0fs",
                name,
                exc,
                self.settings.url,
                delay,
            )
            return self._fail(delay)
        except ssl.SSLCertVerificationError as exc:
            return self._fail(self._tls_refused(name, exc))
        except (
            OSError,
            TimeoutError,
            InvalidHandshake,
            ConnectionClosed,
            HandshakeFailed,
            ProtocolError,
        ) as exc:
            self.last_failure = f"{type(exc).__name__}: {exc}"
            delay = self.backoff.next_delay()
            log.warning(
                "%s: connection to %s failed or lost (%s); reconnecting in %.1fs",
                name,
                self.settings.url,
                self.last_failure,
                delay,
            )
            return self._fail(delay)
        if self.state is not LinkState.CLOSED:
            self._set(LinkState.DISCONNECTED)
        if agent.stopping.is_set():
            return None
        self.last_delay = self.backoff.next_delay()
        return self.last_delay

    def _tls_refused(self, name: str, exc: ssl.SSLCertVerificationError) -> float:
        """A hub we cannot trust: say why once, then retry slowly (only an operator can fix it)."""
        reason = describe_failure(exc, self.settings.url, self.settings.ca_file)
        delay = self.settings.auth_retry_delay * self.rng.uniform(0.8, 1.2)
        level = logging.DEBUG if reason == self.last_failure else logging.ERROR
        log.log(level, "%s: %s; retrying in %.0fs", name, reason, delay)
        self.last_failure = reason
        return delay

    def _tls_options(self) -> dict[str, Any]:
        # websockets refuses ssl=None for wss:// and any ssl for ws://: pass it only when set.
        context = self.settings.ssl_context
        return {"ssl": context} if context is not None else {}

    def _fail(self, delay: float) -> float:
        self._set(LinkState.DISCONNECTED)
        self.last_delay = delay
        return delay

    async def _session(self, agent: Agent) -> None:
        headers = {"X-Auth-Token": self.settings.token}
        try:
            ws = await connect(
                self.settings.url,
                additional_headers=headers,
                open_timeout=self.settings.connect_timeout,
                ping_interval=None,  # started after welcome, with the hub's timings
                close_timeout=self.settings.flush_timeout,
                compression=None,
                max_size=self.settings.max_frame_bytes,
                user_agent_header=f"monitor-agent/{agent.identity.agent_version}",
                **self._tls_options(),
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise TokenRejected(status) from None
            raise
        try:
            welcome = await self._handshake(ws, agent)
            self._ws = ws
            self._set(LinkState.CONNECTED)
            self.connections += 1
            self.backoff.reset()
            log.info(
                "%s: connected to %s (ping every %gs, timeout %gs)",
                agent.identity.device_id,
                self.settings.url,
                welcome.ping_interval,
                welcome.ping_timeout,
            )
            await self._serve(ws, agent, welcome)
            if not agent.stopping.is_set():
                log.warning(
                    "%s: hub closed the connection (code %s %s)",
                    agent.identity.device_id,
                    ws.close_code,
                    ws.close_reason or "",
                )
        finally:
            self._ws = None
            await ws.close(CLOSE_NORMAL)

    async def _handshake(self, ws: ClientConnection, agent: Agent) -> Welcome:
        ident = agent.identity
        await ws.send(
            encode(
                Hello(
                    protocol=PROTOCOL_VERSION,
                    device_id=ident.device_id,
                    agent_version=ident.agent_version,
                    hostname=ident.hostname,
                    platform=ident.platform,
                    capabilities=tuple(agent.handlers.capabilities()),
                )
            )
        )
        async with asyncio.timeout(self.settings.connect_timeout):
            frame = decode_hub_frame(await ws.recv())
        if isinstance(frame, ErrorFrame):
            raise HandshakeFailed(f"hub refused hello: {frame.code}: {frame.message}")
        if not isinstance(frame, Welcome):
            raise HandshakeFailed(f"expected welcome, got {frame.type}")
        # The hub pings us too; our own pings notice a hub that went silent.
        if frame.ping_interval > 0:
            ws.ping_interval = frame.ping_interval
            ws.ping_timeout = frame.ping_timeout
            ws.start_keepalive()
        return frame

    async def _serve(self, ws: ClientConnection, agent: Agent, welcome: Welcome) -> None:
        self._last_sent = time.monotonic()
        for command_id, result in agent.unconfirmed_acks():
            await self._send(ws, encode(result.to_ack(command_id)))
        limit = min(self.settings.max_frame_bytes, welcome.max_frame_bytes)
        tasks = [
            asyncio.create_task(self._receive(ws, agent), name="receive"),
            asyncio.create_task(self._drain(ws, agent, limit, welcome.ping_timeout), name="drain"),
            asyncio.create_task(self._heartbeat(ws, welcome.heartbeat_interval), name="heartbeat"),
            asyncio.create_task(agent.stopping.wait(), name="stopping"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if task.get_name() == "stopping":
                await self._flush(ws, agent, limit, welcome.ping_timeout)
            elif (exc := task.exception()) is not None:
                raise exc
        if agent.stopping.is_set():
            self._set(LinkState.CLOSED)
            code = CLOSE_RESTART if agent.exit_reason == "restart" else CLOSE_NORMAL
            await ws.close(code, f"agent {agent.exit_reason}")

    async def _flush(self, ws: ClientConnection, agent: Agent, limit: int, pong_timeout: float) -> None:
        """On the way out: send what is spooled and wait briefly for outstanding acks."""
        try:
            async with asyncio.timeout(self.settings.flush_timeout):
                receiver = asyncio.create_task(self._receive(ws, agent))
                try:
                    await self._send_spooled(ws, agent, limit, pong_timeout)
                    while agent.unconfirmed_acks():
                        self._acked.clear()
                        await self._acked.wait()
                finally:
                    receiver.cancel()
                    await asyncio.gather(receiver, return_exceptions=True)
        except (TimeoutError, ConnectionClosed) as exc:
            log.info("%s: flush incomplete (%r); the rest is kept on disk", agent.identity.device_id, exc)

    async def _receive(self, ws: ClientConnection, agent: Agent) -> None:
        async for raw in ws:
            try:
                frame = decode_hub_frame(raw)
            except ProtocolError as exc:
                log.warning("%s: ignoring a hub frame: %s", agent.identity.device_id, exc)
                continue
            if isinstance(frame, CommandFrame):
                agent.submit_command(frame.id, frame.command, frame.args)
            elif isinstance(frame, Acked):
                agent.journal.confirm(frame.id)
                self._acked.set()
            elif isinstance(frame, ErrorFrame):
                log.warning(
                    "%s: hub refused a frame: %s: %s", agent.identity.device_id, frame.code, frame.message
                )
                if frame.code == "unknown_command" and frame.id is not None:
                    agent.journal.confirm(frame.id)  # the hub will never take that ack: stop re-sending
                    self._acked.set()

    async def _heartbeat(self, ws: ClientConnection, every: float) -> None:
        """The hub expects a frame at least every ``every`` seconds; pings do not count."""
        while True:
            idle = time.monotonic() - self._last_sent
            if idle >= every:
                await self._send(ws, encode(Heartbeat()))
                self.heartbeats_sent += 1
                idle = 0.0
            await asyncio.sleep(every - idle)

    async def _send(self, ws: ClientConnection, text: str) -> None:
        await ws.send(text)
        self._last_sent = time.monotonic()

    async def _drain(self, ws: ClientConnection, agent: Agent, limit: int, pong_timeout: float) -> None:
        while True:
            agent.sample_ready.clear()
            if not await self._send_spooled(ws, agent, limit, pong_timeout):
                await agent.sample_ready.wait()

    async def _send_spooled(
        self, ws: ClientConnection, agent: Agent, limit: int, pong_timeout: float
    ) -> bool:
        """Send one batch of the oldest samples; False when the spool was empty."""
        rows = agent.spool.peek(self.settings.batch_size)
        if not rows:
            return False
        keys, frame = _frame_for(rows, limit)
        if frame is not None:
            await self._send(ws, frame)
            # A pong proves the hub's side read everything sent before the ping: only then
            # are the samples forgotten, so a hub that dies mid-stream loses nothing.
            pong = await ws.ping()
            async with asyncio.timeout(pong_timeout):
                await pong
        agent.spool.remove(keys)
        return True

    async def send_ack(self, command_id: int, result: CommandResult) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await self._send(ws, encode(result.to_ack(command_id)))
        except ConnectionClosed:
            return False
        return True

    async def wait_connected(self) -> None:
        await self.connected.wait()

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.close(CLOSE_NORMAL)


def _frame_for(rows: list[tuple[int, Sample]], limit: int) -> tuple[list[int], str | None]:
    """The metrics or metrics_batch frame for the oldest rows that fit in ``limit`` bytes.

    Returns the keys covered (including samples dropped as invalid) and the frame text.
    """
    valid: list[tuple[int, SampleFields]] = []
    bad: list[int] = []
    for key, sample in rows:
        try:
            valid.append((key, SampleFields.from_mapping(sample)))
        except FrameValidationError as exc:
            log.error("dropping a spooled sample that fails validation: %s", exc)
            bad.append(key)
    count = len(valid)
    while count:
        chunk = valid[:count]
        if count == 1:
            text = encode(Metrics.of(chunk[0][1]))
        else:
            text = encode(MetricsBatch(samples=tuple(s for _, s in chunk)))
        if len(text.encode()) <= limit or count == 1:
            return bad + [k for k, _ in chunk], text
        count //= 2
    return bad, None
