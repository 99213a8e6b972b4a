"""The store interface: every backend (SQLite by default, PostgreSQL for several hubs) provides it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from monitor_server.store.records import Command, Device, PresenceEvent, Sample


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # devices and samples
    async def write_samples(self, samples: Sequence[Sample], seen_at: float) -> None: ...
    async def touch_device(self, device_id: str, seen_at: float, **info: str | None) -> None: ...
    async def list_devices(self) -> list[Device]: ...
    async def get_device(self, device_id: str) -> Device | None: ...
    async def query_samples(
        self, device_id: str, since: float | None, until: float | None, limit: int
    ) -> list[Sample]: ...
    async def query_buckets(
        self, device_id: str, since: float | None, until: float | None, step: float, limit: int
    ) -> list[Sample]: ...
    async def latest_sample(self, device_id: str) -> Sample | None: ...
    async def delete_samples_before(self, cutoff: float) -> int: ...

    # presence
    async def set_presence(
        self, device_id: str, online: bool, reason: str, connection: str | None, at: float
    ) -> PresenceEvent: ...
    async def set_presence_many(self, events: Sequence[PresenceEvent]) -> None: ...
    async def presence_events(self, device_id: str, limit: int) -> list[PresenceEvent]: ...

    # commands
    async def create_command(
        self,
        device_id: str,
        command: str,
        args: dict[str, Any] | None,
        at: float,
        idempotency_key: str | None = None,
        expires_at: float | None = None,
    ) -> tuple[Command, bool]:
        """``(command, created)``; a known key returns its command, Conflict if the body differs."""
        ...

    async def get_command(self, device_id: str, command_id: int) -> Command | None: ...
    async def list_commands(self, device_id: str, limit: int) -> list[Command]: ...
    async def open_commands(
        self, device_id: str, after_id: int = 0, limit: int = -1, at: float | None = None
    ) -> list[Command]:
        """Unacknowledged commands with ids above ``after_id``, oldest first (``limit`` < 0: all).

        With ``at``, commands whose expiry is at or before it are left out (never delivered).
        """

    async def expire_commands(self, at: float, device_id: str | None = None) -> list[Command]:
        """Mark ``expired`` the open commands past their expiry at ``at``; return exactly those, by id."""
        ...

    async def mark_delivered(self, command_ids: Sequence[int], at: float) -> list[Command]:
        """Move pending commands to delivered; return exactly the rows changed, by id."""
        ...

    async def ack_command(
        self,
        device_id: str,
        command_id: int,
        success: bool,
        message: str,
        result: dict[str, Any] | None,
        at: float,
    ) -> tuple[Command, bool]:
        """First ack wins: ``(stored command, whether this call acked it)``; NotFound if unknown."""
        ...

    async def cancel_command(self, device_id: str, command_id: int, at: float) -> Command:
        """Cancel an open command (again: no change); Conflict if already settled otherwise."""
        ...
