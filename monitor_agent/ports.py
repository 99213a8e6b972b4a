"""What a transport may do with its agent: the few operations it needs, and nothing else.

A transport takes samples and confirms them, delivers commands, sends the acks the journal
holds and confirms those, and watches for the stop signal. It never sees the ``Agent``: the
agent hands it an ``AgentPorts`` and learns of nothing in return (no call back into the
transport), so a transport can be tested, or replaced, against these few methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from monitor_agent.agent import Identity
    from monitor_agent.result import CommandResult
    from monitor_agent.spool import Sample


class SampleOutbox(Protocol):
    """Spooled samples, oldest first; the transport deletes them once the hub stored them."""

    @property
    def ready(self) -> asyncio.Event:
        """Set whenever a sample is added (the transport clears it before it looks)."""

    def peek(self, limit: int, exclude: Collection[int] = ...) -> list[tuple[int, Sample]]:
        """Up to ``limit`` oldest samples with their keys, leaving out the keys in ``exclude``."""

    def remove(self, keys: Iterable[int]) -> None:
        """Forget samples the hub committed (or refused for good)."""


class CommandSink(Protocol):
    """Where commands from the hub go; they run one at a time, in the order submitted."""

    def submit(self, command_id: int, command: str, args: Mapping[str, Any] | None) -> None: ...

    async def join(self) -> None:
        """Return once every submitted command has run and its result is journaled."""


class AckOutbox(Protocol):
    """Command results the hub has not confirmed yet."""

    @property
    def ready(self) -> asyncio.Event:
        """Set whenever a result is journaled and its ack is due (the transport clears it)."""

    def unconfirmed(self) -> list[tuple[int, CommandResult]]:
        """Results not yet confirmed, oldest first."""

    def confirm(self, command_id: int) -> None:
        """The hub stored this ack (or will never take it): stop sending it."""


class StopSignal(Protocol):
    """The agent wants to stop: flush briefly, close, return."""

    @property
    def stopping(self) -> asyncio.Event: ...

    @property
    def restarting(self) -> bool:
        """True when the agent stops to re-execute itself (the socket closes with 1012)."""


@dataclass(frozen=True)
class AgentPorts:
    """Everything a transport gets from its agent."""

    identity: Identity
    capabilities: tuple[str, ...]  # command names, announced in hello
    samples: SampleOutbox
    commands: CommandSink
    acks: AckOutbox
    stop: StopSignal

    async def wait_stopping(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the agent is stopping."""
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await self.stop.stopping.wait()
        except TimeoutError:
            return False
        return True
