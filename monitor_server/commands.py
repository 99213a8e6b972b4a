"""Operator commands: persist first, then push; acks committed before ``acked`` goes back.

A command past its expiry (``ttl`` / ``expires_at``) is never delivered: every read leaves it
out and marks it ``expired`` (lazily), and a periodic sweep marks the rest, each change
published like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor_server.bus import EventBus
from monitor_server.cluster import Exclusive
from monitor_server.events import CommandEvent
from monitor_server.sessions import SessionRegistry
from monitor_server.store import Command, Store
from protocol.codec import encode_json
from protocol.frames import CommandFrame
from protocol.timestamps import to_iso

log = logging.getLogger("monitor_server.commands")

# The largest id SQLite gives and the longest ``created_at`` the hub writes (``to_iso``, with
# microseconds): a frame measured with them is never shorter than the one the hub will send.
_WORST_ID = 2**63 - 1
_WORST_CREATED_AT = "2000-01-01T00:00:00.000000Z"
_MAX_TIMED_PUSHES = 10_000  # pushes awaiting their write, timed for /metrics; past it timing restarts


class CommandTooLarge(ValueError):
    """The command, framed for its agent, would exceed the agent's frame limit: it could never arrive."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"command too large: its frame to the agent would be {size} bytes, over the agent's "
            f"frame limit {limit} bytes"
        )
        self.size = size
        self.limit = limit


class AlreadyExpired(ValueError):
    """The command would expire before it is even queued (``expires_at`` in the past)."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What an enqueue did, and what the hub knows of the device it is for."""

    command: Command
    created: bool  # False: an earlier request with the same Idempotency-Key created it
    device_known: bool  # the device has been seen (connected or ingested) at least once
    device_online: bool

    def to_json(self) -> dict[str, Any]:
        return {
            **self.command.to_json(),
            "duplicate": not self.created,
            "device_known": self.device_known,
            "device_online": self.device_online,
        }


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
        # Told the seconds from an enqueue to its frame written to the agent's socket (/metrics).
        self.on_push: Callable[[float], None] | None = None
        self._pushed_at: dict[int, float] = {}  # command id -> monotonic start of its enqueue

    async def enqueue(
        self,
        device_id: str,
        command: str,
        args: dict[str, Any] | None,
        idempotency_key: str | None = None,
        *,
        max_frame_bytes: int | None = None,
        ttl: float | None = None,
        expires_at: float | None = None,
        unseen_ttl: float = 0.0,
    ) -> Enqueued:
        """Store, then push.

        The command expires at ``expires_at``, else ``ttl`` seconds from now, else, for a device
        never seen, ``unseen_ttl`` seconds from now (0: never). Raises CommandTooLarge when its
        frame would exceed ``max_frame_bytes``, AlreadyExpired when ``expires_at`` is past.
        """
        if max_frame_bytes is not None:
            size = framed_size(command, args)
            if size > max_frame_bytes:
                raise CommandTooLarge(size, max_frame_bytes)
        started, now = time.monotonic(), self._clock()
        device = await self._store.get_device(device_id)
        if expires_at is None and ttl is not None:
            expires_at = now + ttl
        elif expires_at is None and device is None and unseen_ttl > 0:
            expires_at = now + unseen_ttl
        if expires_at is not None and expires_at <= now:
            raise AlreadyExpired(f"expires_at {to_iso(expires_at)} is already past: nothing was queued")
        created, is_new = await self._store.create_command(
            device_id, command, args, now, idempotency_key, expires_at
        )
        if is_new:
            self._publish(created)
            if self._sessions.push(created) and self.on_push is not None:
                if len(self._pushed_at) >= _MAX_TIMED_PUSHES:  # sockets that closed before writing
                    self._pushed_at.clear()
                self._pushed_at[created.id] = started
        online = device is not None and device.online
        return Enqueued(created, is_new, device_known=device is not None, device_online=online)

    async def next_for(self, device_id: str) -> Command | None:
        """The oldest unacknowledged command (the polling agents' view), marked delivered."""
        now = await self._expire(device_id)
        backlog = await self._store.open_commands(device_id, limit=1, at=now)
        if not backlog:
            return None
        for changed in await self._store.mark_delivered([backlog[0].id], self._clock()):
            self._publish(changed)
        return backlog[0]

    async def backlog(self, device_id: str, after_id: int = 0, limit: int = -1) -> list[Command]:
        """Unacknowledged commands after ``after_id``, oldest first: a reconnect's backlog, page by page."""
        now = await self._expire(device_id)
        return await self._store.open_commands(device_id, after_id, limit, at=now)

    async def get(self, device_id: str, command_id: int) -> Command | None:
        """One command as stored; one past its expiry is marked ``expired`` first."""
        command = await self._store.get_command(device_id, command_id)
        if command is not None and command.is_due(self._clock()):
            await self._expire(device_id)
            command = await self._store.get_command(device_id, command_id)
        return command

    async def history(self, device_id: str, limit: int) -> list[Command]:
        """The newest ``limit`` commands of a device; those past their expiry are marked first."""
        commands = await self._store.list_commands(device_id, limit)
        now = self._clock()
        if any(command.is_due(now) for command in commands):
            await self._expire(device_id)
            commands = await self._store.list_commands(device_id, limit)
        return commands

    async def ack(
        self, device_id: str, command_id: int, success: bool, message: str, result: dict[str, Any] | None
    ) -> Command:
        """First final state wins: an ack after the command expired (or was cancelled) changes nothing."""
        now = await self._expire(device_id)
        command, changed = await self._store.ack_command(device_id, command_id, success, message, result, now)
        if changed:
            self._publish(command)
        return command

    async def cancel(self, device_id: str, command_id: int) -> Command:
        now = await self._expire(device_id)
        command = await self._store.cancel_command(device_id, command_id, now)
        self._publish(command)
        return command

    async def expire_due(self) -> int:
        """Mark every open command past its expiry ``expired``; return how many were."""
        expired = await self._store.expire_commands(self._clock())
        for command in expired:
            self._publish(command)
        return len(expired)

    async def run_expiry_sweeper(self, interval: float, exclusive: Exclusive | None = None) -> None:
        """Mark expired commands every ``interval`` seconds, so they show (and are published) unread.

        With several hubs, one of them at a time sweeps (``exclusive``).
        """
        while True:
            try:
                async with exclusive("expiry") if exclusive else contextlib.nullcontext(True) as mine:
                    count = await self.expire_due() if mine else 0
                if count:
                    log.info("%d commands expired unacknowledged", count)
            except Exception:
                log.exception("expiry sweep failed; retrying next interval")
            await asyncio.sleep(interval)

    async def _expire(self, device_id: str) -> float:
        """Mark this device's commands past their expiry; return the ``now`` used, for the read after."""
        now = self._clock()
        for command in await self._store.expire_commands(now, device_id):
            self._publish(command)
        return now

    def delivered(self, command_id: int) -> None:
        """Called by a session writer after a command frame left; stored in batches."""
        self._delivered.append(command_id)
        self._delivered_wake.set()
        started = self._pushed_at.pop(command_id, None)
        if started is not None and self.on_push is not None:
            self.on_push(time.monotonic() - started)

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
