"""Operator commands: persist first, then push; acks committed before ``acked`` goes back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from monitor_server.bus import EventBus
from monitor_server.events import CommandEvent
from monitor_server.sessions import SessionRegistry
from monitor_server.store import Command, Store
from protocol.codec import encode_json
from protocol.frames import CommandFrame

log = logging.getLogger("monitor_server.commands")

# The largest id SQLite gives and the longest ``created_at`` the hub writes (``to_iso``, with
# microseconds): a frame measured with them is never shorter than the one the hub will send.
_WORST_ID = 2**63 - 1
_WORST_CREATED_AT = "2000-01-01T00:00:00.000000Z"


class CommandTooLarge(ValueError):
    """The command, framed for its agent, would exceed the agent's frame limit: it could never arrive."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"command too large: its frame to the agent would be {size} bytes, over the agent's "
            f"frame limit {limit} bytes"
        )
        self.size = size
        self.limit = limit


def framed_size(command: str, args: dict[str, Any] | None) -> int:
    """Bytes of the ``command`` frame that carries this command, at its largest (any id, any time)."""
    frame = CommandFrame(id=_WORST_ID, command=command, args=args, created_at=_WORST_CREATED_AT)
    return len(encode_json(frame))


class CommandService:
    def __init__(
        self, store: Store, bus: EventBus, sessions: SessionRegistry, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._bus = bus
        self._sessions = sessions
        self._clock = clock
        self._delivered: list[int] = []
        self._delivered_wake = asyncio.Event()

    async def enqueue(
        self,
        device_id: str,
        command: str,
        args: dict[str, Any] | None,
        idempotency_key: str | None = None,
        *,
        max_frame_bytes: int | None = None,
    ) -> tuple[Command, bool]:
        """Store, then push. CommandTooLarge when its frame would exceed ``max_frame_bytes``."""
        if max_frame_bytes is not None:
            size = framed_size(command, args)
            if size > max_frame_bytes:
                raise CommandTooLarge(size, max_frame_bytes)
        created, is_new = await self._store.create_command(
            device_id, command, args, self._clock(), idempotency_key
        )
        if is_new:
            self._publish(created)
            self._sessions.push(created)
        return created, is_new

    async def next_for(self, device_id: str) -> Command | None:
        """The oldest unacknowledged command (the polling agents' view), marked delivered."""
        backlog = await self._store.open_commands(device_id, limit=1)
        if not backlog:
            return None
        for changed in await self._store.mark_delivered([backlog[0].id], self._clock()):
            self._publish(changed)
        return backlog[0]

    async def backlog(self, device_id: str, after_id: int = 0, limit: int = -1) -> list[Command]:
        """Unacknowledged commands after ``after_id``, oldest first: a reconnect's backlog, page by page."""
        return await self._store.open_commands(device_id, after_id, limit)

    async def ack(
        self, device_id: str, command_id: int, success: bool, message: str, result: dict[str, Any] | None
    ) -> Command:
        command, changed = await self._store.ack_command(
            device_id, command_id, success, message, result, self._clock()
        )
        if changed:
            self._publish(command)
        return command

    async def cancel(self, device_id: str, command_id: int) -> Command:
        command = await self._store.cancel_command(device_id, command_id, self._clock())
        self._publish(command)
        return command

    def delivered(self, command_id: int) -> None:
        """Called by a session writer after a command frame left; stored in batches."""
        self._delivered.append(command_id)
        self._delivered_wake.set()

    async def run_delivery_recorder(self) -> None:
        while True:
            await self._delivered_wake.wait()
            self._delivered_wake.clear()
            ids, self._delivered = self._delivered, []
            try:
                for changed in await self._store.mark_delivered(ids, self._clock()):
                    self._publish(changed)
            except Exception:
                log.exception("recording delivery of %d commands failed", len(ids))

    def _publish(self, command: Command) -> None:
        self._bus.publish(CommandEvent.of(command))
