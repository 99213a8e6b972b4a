"""One agent's socket on the hub: the protocol's session rules, a reader and a writer task.

``AgentSocket`` owns everything about one connection: the sans-I/O ``HubSession`` that
decides, a bounded outbox, and both tasks, run in one ``TaskGroup`` so a failing writer ends
the connection and no task outlives it. Samples go to the shared writer; each commit that
holds them is answered with a ``stored`` frame, never before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from monitor_server.auth import presented_token
from monitor_server.events import DeviceDetails
from monitor_server.identity.principals import Principal, PrincipalKind
from monitor_server.identity.secrets import digest, same
from monitor_server.ingest import TRANSIENT_ERRORS, sample_of
from monitor_server.keepalive import ABORT_EXTENSION, SERVER_SHUTDOWN_EXTENSION
from monitor_server.lean_sync import Wakeup
from monitor_server.store import Command
from monitor_server.store.records import DeviceCredential
from monitor_server.throttle import client_address
from protocol.codec import AckIn, Samples, encode
from protocol.codes import CloseCode, PresenceReason, offered_commands
from protocol.errors import Conflict, NotFound
from protocol.frames import Acked, CommandFrame, Hello, UpdateStatus, Welcome
from protocol.hub_session import (
    CloseRequested,
    CredentialStored,
    HelloAccepted,
    HubEvent,
    HubSession,
    SessionState,
)
from protocol.timestamps import to_iso

if TYPE_CHECKING:
    from monitor_server.hub import Hub

log = logging.getLogger("monitor_server.agent_socket")

ACKS_QUEUED = 256  # acks read but not yet stored, per socket, before reading waits
BACKLOG_PAGE = 32  # commands read from the store at a time when a socket opens
CLOSE_GRACE = 2.0  # seconds the writer gets to send our close frame before it is cancelled
_SOCKET_GONE = (WebSocketDisconnect, RuntimeError, OSError)


def command_frame(command: Command) -> str:
    return encode(
        CommandFrame(
            id=command.id, command=command.command, args=command.args, created_at=to_iso(command.created_at)
        )
    )


class AgentSocket:
    """An accepted ``/ws/agent`` socket from its first frame to its end."""

    def __init__(self, hub: Hub, websocket: WebSocket, principal: Principal | None = None) -> None:
        self.hub = hub
        self.websocket = websocket
        self.principal = principal  # who authenticated the upgrade (a device may only be itself)
        self.session = HubSession()
        self.device_id = ""
        self.instance_id = ""
        self.close_code: int | None = None
        self._close_reason = ""
        # A list, not a deque: at most ``outbox_size`` (1,024) frames, so ``pop(0)`` is a short
        # memmove, and an empty list is 56 bytes where a deque is 760 (held by every socket).
        self._outbox: list[tuple[str, int | None]] = []
        self._outbox_bytes = 0
        self._wake = Wakeup()
        self._syncing = True  # the stored backlog is being sent page by page: pushes wait in the store
        self._pushed_while_syncing = False
        self._last_command_id = 0
        self._ended = False
        self.last_frame = time.monotonic()  # when the last frame arrived (monitor_server.idle)
        # Rotation (DESIGN §10): the offer awaiting the agent's ``credential_saved``, with who asked.
        self._rotation: asyncio.Future[DeviceCredential | None] | None = None
        self._rotation_by: tuple[Principal | str | None, str | None] = (None, None)
        # Acks waiting to be stored, and the task storing them: started by the first ack, ended
        # when they are through (an idle socket holds no queue and no task for them).
        self._acks: list[AckIn] = []
        self._acker: asyncio.Task[None] | None = None
        self._tasks: asyncio.TaskGroup | None = None

    # Lifecycle

    async def serve(self) -> None:
        hello = await self._receive_hello()
        if hello is None:
            return
        self.device_id, self.instance_id = hello.device_id, hello.instance_id
        if await self._refused_as_other_device(hello) or await self._refused_as_duplicate(hello):
            return
        previous = self.hub.sessions.register(self)
        if previous is not None:
            previous.abort(CloseCode.REPLACED, "replaced by a newer connection")
        if not await self._credential_live():
            self._ended = True
            # The socket this one replaced no longer counts itself: its device goes offline here.
            if self.hub.sessions.unregister(self) and previous is not None:
                await self.hub.presence.ws_disconnected(self.device_id, PresenceReason.DISCONNECTED)
            await self.websocket.close(CloseCode.REVOKED, "credential revoked")
            return
        reason = PresenceReason.DISCONNECTED
        try:
            await self._open(hello)
            reason = await self._run()
        finally:
            self._ended = True
            self._settle_rotation(None)
            self._outbox.clear()
            if self.hub.sessions.unregister(self):
                await self.hub.presence.ws_disconnected(self.device_id, reason)

    async def _run(self) -> PresenceReason:
        """Read and write until the socket ends; a failing writer ends the reader too."""
        reason = PresenceReason.DISCONNECTED
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                writer = tasks.create_task(self._write_loop(), name=f"writer {self.device_id}")
                reason = await self._read_loop()
                if self.close_code is not None:  # let the writer send our close frame first
                    await asyncio.wait({writer}, timeout=CLOSE_GRACE)
                writer.cancel()
                if self._acker is not None:
                    self._acker.cancel()
        except* _SOCKET_GONE as group:
            log.debug("agent %s: socket gone while writing: %r", self.device_id, group.exceptions[0])
        return reason

    async def _receive_hello(self) -> Hello | None:
        within = self.hub.settings.hello_timeout
        try:
            async with asyncio.timeout(within):
                message = await self.websocket.receive()
        except TimeoutError:
            await self._refuse(self.session.hello_timeout(within))
            return None
        if message["type"] == "websocket.disconnect":
            return None
        for event in self.session.receive(_payload(message)):
            if isinstance(event, HelloAccepted):
                return event.hello
            if isinstance(event, CloseRequested):
                await self._refuse(event)
        return None

    async def _refused_as_other_device(self, hello: Hello) -> bool:
        """A device credential may open only its own device's session (DESIGN §10)."""
        principal = self.principal
        if principal is None or principal.kind is not PrincipalKind.DEVICE:
            return False
        if principal.device_id == hello.device_id:
            return False
        log.warning(
            "refused hello for device %s from %s: its credential belongs to device %s",
            hello.device_id,
            client_address(self.websocket),
            principal.device_id,
        )
        message = f"403: this credential belongs to device {principal.device_id!r}, not {hello.device_id!r}"
        await self._refuse(self.session.forbidden(message))
        return True

    async def _refused_as_duplicate(self, hello: Hello) -> bool:
        """Keep the first of two agent instances claiming one device id; refuse the newcomer."""
        holder = self.hub.sessions.holder_conflicts(hello.device_id, hello.instance_id)
        if holder is None:
            return False
        client = self.websocket.client
        address = f"{client.host}:{client.port}" if client else "?"
        found = self.hub.sessions.note_duplicate(
            hello.device_id, hello.instance_id, holder.instance_id, address
        )
        level = logging.WARNING if found.refused == 1 or found.refused % 100 == 0 else logging.DEBUG
        log.log(
            level,
            "device %s: refused agent instance %s from %s, the id is held by instance %s "
            "(%d refusals; cloned machines?)",
            hello.device_id,
            hello.instance_id,
            address,
            holder.instance_id,
            found.refused,
        )
        await self._refuse(self.session.duplicate(self.hub.settings.duplicate_retry_after))
        return True

    async def _credential_live(self) -> bool:
        """False if the device credential was revoked since the upgrade (the registry missed it then).

        Presenting the pending credential of a rotation proves the agent stored it (it presents
        the newest it saved): the rotation is confirmed here, whether or not ``credential_saved``
        reached the hub before a restart or a lost connection.
        """
        principal = self.principal
        if principal is None or principal.kind is not PrincipalKind.DEVICE:
            return True
        enrollment = self.hub.identity.enrollment
        found = await enrollment.credential(self.device_id)
        if found is None or found.revoked or self.close_code == CloseCode.REVOKED:
            log.warning("agent %s: credential revoked while it connected; closing", self.device_id)
            return False
        secret = presented_token(self.websocket.headers)
        if secret and found.pending_hash is not None and same(digest(secret), found.pending_hash):
            try:
                await enrollment.confirm_rotation(self.device_id, address=client_address(self.websocket))
            except (Conflict, NotFound) as exc:
                log.warning("agent %s: rotation not confirmed: %s", self.device_id, exc)
            else:
                log.info("agent %s: rotation confirmed (it presented its new credential)", self.device_id)
        return True

    async def _refuse(self, close: CloseRequested) -> None:
        for text in self.session.data_to_send():
            await self.websocket.send_text(text)
        await self.websocket.close(close.code, close.reason)

    async def _open(self, hello: Hello) -> None:
        hub, s = self.hub, self.hub.settings
        details = DeviceDetails.of(hello)  # empty strings in hello mean "not reported"
        reported = {
            "hostname": details.hostname,
            "agent_version": details.agent_version,
            "platform": details.platform,
            "agent_tags": json.dumps(sorted(set(hello.tags))),  # what this agent reports, every hello
            "commands": json.dumps(offered_commands(hello.capabilities)),
        }
        await hub.touches.submit((self.device_id, time.time(), reported))
        await hub.presence.ws_connected(self.device_id, details)
        if self.close_code is not None:  # replaced (or closed) while the hub recorded it: no welcome
            return
        self.session.welcome(
            Welcome(
                protocol=hello.protocol,
                device_id=self.device_id,
                heartbeat_interval=s.heartbeat_interval,
                ping_interval=s.ping_interval,
                ping_timeout=s.ping_timeout,
                max_frame_bytes=s.max_frame_bytes,
                server_time=to_iso(time.time()),
            )
        )
        self._wake.set()  # the writer sends the welcome, then the backlog (``_sync_backlog``)
        await hub.releases.on_connected(self)  # an update frame, if a rollout targets this agent

    # Reading

    async def _read_loop(self) -> PresenceReason:
        """Handle frames until the socket ends; return the presence reason for going offline."""
        receive = self.websocket.receive
        while True:
            message = await receive()  # a silent agent is closed by the idle sweep (monitor_server.idle)
            self.last_frame = time.monotonic()
            if message["type"] == "websocket.disconnect":
                code = message.get("code")
                log.info("agent %s closed: code %s %s", self.device_id, code, message.get("reason") or "")
                return self._offline_reason(code)
            for event in self.session.receive(_payload(message)):
                await self._handle(event)
            if self.session.has_data_to_send():
                self._wake.set()  # error frames the session queued (not for every frame: a task switch)

    def _offline_reason(self, code: int | None) -> PresenceReason:
        if self.close_code == CloseCode.OVERLOADED:
            return PresenceReason.OVERLOADED
        if self.close_code == CloseCode.TIMEOUT:
            return PresenceReason.TIMEOUT
        if code == CloseCode.SERVICE_RESTART:
            hub_stopping = SERVER_SHUTDOWN_EXTENSION in self.websocket.scope.get("extensions", {})
            return PresenceReason.HUB_SHUTDOWN if hub_stopping else PresenceReason.AGENT_RESTART
        return PresenceReason.TIMEOUT if code == CloseCode.TIMEOUT else PresenceReason.DISCONNECTED

    async def _handle(self, event: HubEvent) -> None:
        if isinstance(event, Samples):
            if self.close_code != CloseCode.REMOVED:  # a removed device's last frames are not stored
                await self._store(event)
        elif isinstance(event, AckIn):
            # Stored by ``_store_acks``: a commit that stalls must not stop this socket being read
            # (uvicorn reads no pong while the app does not read, and the keepalive would fire).
            await self._queue_ack(event)
        elif isinstance(event, CloseRequested):
            self.abort(event.code, event.reason)
        elif isinstance(event, CredentialStored):
            await self._credential_stored()
        elif isinstance(event, UpdateStatus):
            await self.hub.releases.on_status(self.device_id, event)

    async def _store(self, samples: Samples) -> None:
        hub, now = self.hub, time.time()
        done: asyncio.Future[None] | None = None
        made = [sample_of(self.device_id, received.fields(), now) for received in samples.valid]
        for sample in made:
            done = hub.writer.submit(sample)
        hub.publish_samples(made)
        if done is not None and samples.last_seq is not None:
            done.add_done_callback(partial(self._committed, samples.last_seq))
        # A full backlog pauses this socket's reads until the next commit: back-pressure
        # reaches the agent over TCP instead of the hub buffering without limit.
        await hub.writer.room()

    def _committed(self, seq: int, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # never stored: the agent keeps those samples and sends them again
        self.session.committed(seq)
        self._wake.set()

    async def _queue_ack(self, ack: AckIn) -> None:
        self._acks.append(ack)
        if self._acker is None:
            assert self._tasks is not None, "acks arrive after the welcome"
            self._acker = self._tasks.create_task(self._store_acks(), name=f"acks {self.device_id}")
        elif len(self._acks) >= ACKS_QUEUED:
            await asyncio.wait({self._acker})  # reading waits until the backlog is stored

    async def _store_acks(self) -> None:
        try:
            while self._acks:
                await self._ack(self._acks.pop(0))
        finally:
            self._acker = None

    async def _ack(self, ack: AckIn) -> None:
        frame = ack.frame
        try:
            await self.hub.commands.ack(
                self.device_id, frame.id, frame.success, frame.message, dict(ack.extra) or None
            )
        except NotFound as exc:
            for event in self.session.unknown_command(frame.id, str(exc)):
                await self._handle(event)
            self._wake.set()  # the error frame the session queued
            return
        except TRANSIENT_ERRORS as exc:  # not stored, so no ``acked``: the agent sends it again
            self.hub.writer.note_failure(exc)
            log.warning("agent %s: ack of command %d not stored (%s)", self.device_id, frame.id, exc)
            return
        self.send(encode(Acked(id=frame.id)))

    # Rotation

    def rotation_refusal(self) -> str | None:
        """Why a credential cannot be offered on this socket now, or None."""
        principal = self.principal
        if self.close_code is not None or self.session.state is not SessionState.OPEN:
            return f"device {self.device_id!r} is not connected"
        if principal is None or principal.kind is not PrincipalKind.DEVICE:
            return f"device {self.device_id!r} is connected without its device credential: nothing to rotate"
        if self._rotation is not None:
            return f"a rotation of device {self.device_id!r} awaits the agent's answer"
        return None

    def offer_credential(
        self, secret: str, actor: Principal | str | None = None, address: str | None = None
    ) -> asyncio.Future[DeviceCredential | None]:
        """Send the agent its new credential; the future holds the rotated credential once confirmed.

        It holds None if the socket ended first (the agent confirms by presenting the new
        credential when it connects again). Conflict if no offer can be made now.
        """
        if (refusal := self.rotation_refusal()) is not None:
            raise Conflict(refusal)
        self.session.offer_credential(secret)
        self._rotation = asyncio.get_running_loop().create_future()
        self._rotation_by = (actor, address)
        self._wake.set()
        return self._rotation

    async def _credential_stored(self) -> None:
        actor, address = self._rotation_by
        try:
            rotated = await self.hub.identity.enrollment.confirm_rotation(self.device_id, actor, address)
        except (Conflict, NotFound) as exc:  # revoked, reset, or confirmed at a reconnect meanwhile
            log.warning("agent %s: credential_saved, but no rotation to confirm: %s", self.device_id, exc)
            self._settle_rotation(None)
            return
        log.info("agent %s: credential rotated", self.device_id)
        self._settle_rotation(rotated)

    def _settle_rotation(self, rotated: DeviceCredential | None) -> None:
        future, self._rotation = self._rotation, None
        if future is not None and not future.done():
            future.set_result(rotated)

    # Writing

    def send(self, text: str, command_id: int | None = None) -> None:
        """Queue a frame; when the outbox is full the socket is dropped, never waited on."""
        if self.close_code is not None:
            return
        settings = self.hub.settings
        if (
            len(self._outbox) >= settings.outbox_size
            or self._outbox_bytes + len(text) > settings.outbox_bytes
        ):
            log.warning(
                "outbox full (%d frames, %d bytes), dropping agent %s",
                len(self._outbox),
                self._outbox_bytes,
                self.device_id,
            )
            self.abort(CloseCode.OVERLOADED, "outbox full")
            return
        self._outbox.append((text, command_id))
        self._outbox_bytes += len(text)
        self._wake.set()

    def _has_room(self) -> bool:
        """Below half of both outbox limits: room for the next page of the backlog."""
        settings = self.hub.settings
        return (
            len(self._outbox) < settings.outbox_size // 2 and self._outbox_bytes < settings.outbox_bytes // 2
        )

    async def _write_loop(self) -> None:
        send = self.websocket.send_text
        while True:
            await self._wake.wait()
            self._wake.clear()
            for text in self.session.data_to_send():
                await send(text)
            while self._outbox and self.close_code is None:
                text, command_id = self._outbox.pop(0)
                self._outbox_bytes -= len(text)
                await send(text)
                if command_id is not None:
                    self.hub.commands.delivered(command_id)
            if self.close_code is not None:
                await self.websocket.close(self.close_code, self._close_reason)
                return
            if self._syncing and self._has_room():
                await self._sync_backlog()

    def abort(self, code: int, reason: str) -> None:
        """Close the socket (overflow, replacement, abuse); its queued frames are released at once.

        The close frame goes out through the writer; a peer that does not read within
        ``CLOSE_GRACE`` (an overflowing one at once) has its connection dropped instead.
        """
        if self.close_code is not None:
            return
        self.close_code = code
        self._close_reason = reason
        self._outbox.clear()
        self._outbox_bytes = 0
        self.session.close()
        self._wake.set()
        if code == CloseCode.OVERLOADED:
            self._drop_transport()
        else:
            asyncio.get_running_loop().call_later(CLOSE_GRACE, self._drop_transport)

    def _drop_transport(self) -> None:
        if self._ended:
            return
        abort = self.websocket.scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")
        if abort is not None:
            log.info("agent %s: dropping the connection (%s)", self.device_id, self._close_reason)
            abort()

    # Commands

    def push(self, command: Command) -> None:
        """Send a newly committed command; while the backlog is paged in, the store has it anyway."""
        if self._syncing:
            self._pushed_while_syncing = True
        elif command.id > self._last_command_id:
            self._send_command(command)

    async def _sync_backlog(self) -> None:
        """Queue the next page of unacknowledged commands (FIFO); the writer asks again as it drains.

        Paging keeps a backlog of any size from overflowing the outbox. Commands pushed during
        a page's query are in the store, so the last page is read again until none came.
        """
        self._pushed_while_syncing = False
        page = await self.hub.commands.backlog(self.device_id, self._last_command_id, BACKLOG_PAGE)
        self._wake.set()
        for command in page:
            if not self._has_room():
                return  # the rest is read again once the outbox has drained
            self._send_command(command)
        if len(page) < BACKLOG_PAGE and not self._pushed_while_syncing:
            self._syncing = False

    def _send_command(self, command: Command) -> None:
        self._last_command_id = command.id
        self.send(command_frame(command), command.id)


def _payload(message: Any) -> str | bytes:
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""
