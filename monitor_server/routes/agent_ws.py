"""``/ws/agent``: token on the upgrade, hello first, then metrics and acks in, commands out."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.websockets import WebSocket

from monitor_server.auth import presented_token
from monitor_server.http import JSONResponse
from monitor_server.hub import Hub
from monitor_server.ingest import sample_from
from monitor_server.sessions import CLOSE_OVERLOADED, CLOSE_REPLACED, AgentSession
from monitor_server.store import Sample
from protocol import (
    PROTOCOL_VERSION,
    Ack,
    Acked,
    AgentFrame,
    ErrorFrame,
    Heartbeat,
    Hello,
    Metrics,
    MetricsBatch,
    NotFound,
    ProtocolError,
    SampleFields,
    Welcome,
    decode_agent_frame,
    encode,
    to_iso,
)

log = logging.getLogger("monitor_server.agent_ws")

CLOSE_POLICY = 1008
CLOSE_TIMEOUT = 1011  # also what the keepalive reports when pings go unanswered
CLOSE_SERVICE_RESTART = 1012  # uvicorn closes every socket with this when the hub shuts down
MAX_BAD_FRAMES = 10  # consecutive refused frames before the socket is closed for abuse


async def agent_socket(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    if not hub.token.matches(presented_token(websocket.headers)):
        detail = {"detail": "missing or invalid token (X-Auth-Token or Authorization: Bearer)"}
        await websocket.send_denial_response(JSONResponse(detail, 401))
        return
    await websocket.accept()
    hello = await receive_hello(websocket, hub.settings.hello_timeout)
    if hello is not None:
        await AgentConnection(hub, websocket, hello).serve()


async def refuse(websocket: WebSocket, code: str, message: str, close_code: int = CLOSE_POLICY) -> None:
    await websocket.send_text(encode(ErrorFrame(code=code, message=message)))
    await websocket.close(close_code, message[:120])


async def receive_hello(websocket: WebSocket, within: float) -> Hello | None:
    """The first frame must be a hello of our protocol version, within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            message = await websocket.receive()
    except TimeoutError:
        await refuse(websocket, "hello_timeout", f"no hello within {within:g} s")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    try:
        frame = decode_agent_frame(_payload(message))
    except ProtocolError as exc:
        await refuse(websocket, exc.code, str(exc))
        return None
    if not isinstance(frame, Hello):
        await refuse(websocket, "hello_required", f"the first frame must be hello, not {frame.type}")
        return None
    if frame.protocol != PROTOCOL_VERSION:
        await refuse(
            websocket,
            "unsupported_protocol",
            f"protocol {frame.protocol} is not supported; this hub speaks {PROTOCOL_VERSION}",
        )
        return None
    return frame


def _payload(message: Any) -> str | bytes:
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


class AgentConnection:
    """One agent's socket after a valid hello."""

    def __init__(self, hub: Hub, websocket: WebSocket, hello: Hello) -> None:
        self.hub = hub
        self.websocket = websocket
        self.hello = hello
        self.device_id = hello.device_id
        self.session = AgentSession(
            hello.device_id, websocket, hub.settings.outbox_size, hub.commands.delivered
        )

    async def serve(self) -> None:
        previous = self.hub.sessions.register(self.session)
        if previous is not None:
            previous.abort(CLOSE_REPLACED, "replaced by a newer connection")
        writer = asyncio.get_running_loop().create_task(self.session.run_writer())
        reason = "disconnected"
        try:
            await self._start()
            reason = await self._read_loop()
        finally:
            writer.cancel()
            if self.hub.sessions.unregister(self.session):
                await self.hub.presence.ws_disconnected(self.device_id, reason)

    async def _start(self) -> None:
        hub, hello = self.hub, self.hello
        await hub.store.touch_device(
            self.device_id,
            time.time(),
            hostname=hello.hostname or None,
            agent_version=hello.agent_version or None,
            platform=hello.platform or None,
        )
        await hub.presence.ws_connected(self.device_id)
        s = hub.settings
        self.session.send(
            encode(
                Welcome(
                    device_id=self.device_id,
                    heartbeat_interval=s.heartbeat_interval,
                    ping_interval=s.ping_interval,
                    ping_timeout=s.ping_timeout,
                    max_frame_bytes=s.max_frame_bytes,
                    server_time=to_iso(time.time()),
                )
            )
        )
        self.session.resume(await hub.commands.backlog(self.device_id))

    async def _read_loop(self) -> str:
        """Handle frames until the socket ends; return the presence reason for going offline."""
        bad_frames = 0
        while True:
            try:
                async with asyncio.timeout(self.hub.settings.idle_timeout):
                    message = await self.websocket.receive()
            except TimeoutError:
                self.session.abort(CLOSE_TIMEOUT, "no frame within the idle timeout")
                return "timeout"
            if message["type"] == "websocket.disconnect":
                code = message.get("code")
                log.info("agent %s closed: code %s %s", self.device_id, code, message.get("reason") or "")
                return self._offline_reason(code)
            try:
                await self._handle(decode_agent_frame(_payload(message)))
                bad_frames = 0
            except ProtocolError as exc:
                bad_frames += 1
                command_id = exc.command_id if isinstance(exc, _UnknownCommand) else None
                self.session.send(encode(ErrorFrame(code=exc.code, message=str(exc), id=command_id)))
                if bad_frames >= MAX_BAD_FRAMES:
                    self.session.abort(CLOSE_POLICY, "too many invalid frames")

    def _offline_reason(self, code: int | None) -> str:
        if self.session.close_code == CLOSE_OVERLOADED:
            return "overloaded"
        if code == CLOSE_SERVICE_RESTART:
            return "hub_shutdown"
        return "timeout" if code == CLOSE_TIMEOUT else "disconnected"

    async def _handle(self, frame: AgentFrame) -> None:
        if isinstance(frame, Metrics):
            self._store_sample(frame)
            await self.hub.writer.room()
        elif isinstance(frame, MetricsBatch):
            for sample in frame.samples:
                self._store_sample(sample)
            # A full backlog pauses this socket's reads until the next commit: back-pressure
            # reaches the agent over TCP instead of the hub buffering without limit.
            await self.hub.writer.room()
        elif isinstance(frame, Ack):
            await self._ack(frame)
        elif isinstance(frame, Hello):
            raise _Unexpected("hello was already received on this connection")
        else:
            assert isinstance(frame, Heartbeat)

    def _store_sample(self, fields: SampleFields) -> None:
        sample = sample_from(self.device_id, fields, time.time())
        self.hub.writer.submit(sample)
        if self.hub.bus.subscriber_count:
            self.hub.bus.publish(_sample_event(sample))

    async def _ack(self, frame: Ack) -> None:
        try:
            await self.hub.commands.ack(
                self.device_id, frame.id, frame.success, frame.message, frame.model_extra or None
            )
        except NotFound as exc:
            raise _UnknownCommand(str(exc), frame.id) from None
        self.session.send(encode(Acked(id=frame.id)))


def _sample_event(sample: Sample) -> dict[str, Any]:
    return {"type": "sample", "device_id": sample.device_id, **sample.to_json()}


class _Unexpected(ProtocolError):
    code = "unexpected_frame"


class _UnknownCommand(ProtocolError):
    code = "unknown_command"

    def __init__(self, message: str, command_id: int) -> None:
        super().__init__(message)
        self.command_id = command_id
