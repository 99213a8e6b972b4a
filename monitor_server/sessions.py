"""Live agent sessions: one per device, each with a bounded outbox drained by one writer task.

Nothing ever awaits a socket on behalf of another: a push is a ``put_nowait``; a socket whose
outbox fills up is closed (1013) and its commands wait in the database for the reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.websockets import WebSocket

from monitor_server.store import Command
from protocol import CommandFrame, encode, to_iso

log = logging.getLogger("monitor_server.sessions")

CLOSE_OVERLOADED = 1013
CLOSE_REPLACED = 4000


def command_frame(command: Command) -> str:
    return encode(
        CommandFrame(
            id=command.id, command=command.command, args=command.args, created_at=to_iso(command.created_at)
        )
    )


class AgentSession:
    def __init__(
        self, device_id: str, websocket: WebSocket, outbox_size: int, on_delivered: Callable[[int], None]
    ) -> None:
        self.device_id = device_id
        self.websocket = websocket
        self._outbox: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue(outbox_size)
        self._on_delivered = on_delivered
        self._syncing = True
        self._held: list[Command] = []
        self._last_command_id = 0
        self.close_code: int | None = None
        self._close_task: asyncio.Task[None] | None = None

    def send(self, text: str, command_id: int | None = None) -> None:
        """Queue a frame; when the outbox is full the socket is dropped, never waited on."""
        if self.close_code is not None:
            return
        try:
            self._outbox.put_nowait((text, command_id))
        except asyncio.QueueFull:
            log.warning("outbox full, dropping agent %s", self.device_id)
            self.abort(CLOSE_OVERLOADED, "outbox full")

    def push(self, command: Command) -> None:
        """Send a newly committed command; held back while the reconnect backlog is being sent."""
        if self._syncing:
            self._held.append(command)
        elif command.id > self._last_command_id:
            self._send_command(command)

    def resume(self, backlog: list[Command]) -> None:
        """Send every unacknowledged command in FIFO order, then the ones pushed meanwhile."""
        for command in backlog:
            self._send_command(command)
        for command in self._held:
            if command.id > self._last_command_id:
                self._send_command(command)
        self._held.clear()
        self._syncing = False

    def _send_command(self, command: Command) -> None:
        self._last_command_id = command.id
        self.send(command_frame(command), command.id)

    async def run_writer(self) -> None:
        while True:
            text, command_id = await self._outbox.get()
            await self.websocket.send_text(text)
            if command_id is not None:
                self._on_delivered(command_id)

    def abort(self, code: int, reason: str) -> None:
        """Close the socket from outside the writer (overflow, replacement)."""
        if self.close_code is not None:
            return
        self.close_code = code
        self._close_task = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.websocket.close(code, reason)
        except Exception:  # the socket may already be gone; closing it is best effort
            log.debug("close of %s failed", self.device_id, exc_info=True)


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, AgentSession] = {}

    def register(self, session: AgentSession) -> AgentSession | None:
        """Make ``session`` current for its device; return the one it replaces, if any."""
        previous = self._sessions.get(session.device_id)
        self._sessions[session.device_id] = session
        return previous

    def unregister(self, session: AgentSession) -> bool:
        """Forget ``session`` if it is still current; False when it was replaced."""
        if self._sessions.get(session.device_id) is not session:
            return False
        del self._sessions[session.device_id]
        return True

    def get(self, device_id: str) -> AgentSession | None:
        return self._sessions.get(device_id)

    def push(self, command: Command) -> bool:
        session = self._sessions.get(command.device_id)
        if session is None:
            return False
        session.push(command)
        return True

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._sessions
