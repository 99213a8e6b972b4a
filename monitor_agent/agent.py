"""One agent: samples into its spool, runs commands once, and hands both to a transport.

Every sample goes through the spool, connected or not; the transport drains it oldest
first and removes samples only once the hub has them. Replay after an outage and live
sending are therefore the same path, and order is kept without a mode switch.

Nothing here is process-global: many ``Agent`` objects can share one event loop (the
simulator does that), each with its own sample source, spool and journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from monitor_agent.config import HostCommand
from monitor_agent.executor import CommandExecutor
from monitor_agent.handlers import Handlers
from monitor_agent.journal import Journal
from monitor_agent.result import CommandResult
from monitor_agent.spool import Sample, Spool

log = logging.getLogger(__name__)


class ExitReason(StrEnum):
    STOPPED = "stopped"
    RESTART = "restart"


@dataclass(frozen=True)
class Identity:
    """Who the agent says it is in hello (and in every REST ingest)."""

    device_id: str
    hostname: str
    platform: str
    agent_version: str


@dataclass(frozen=True)
class PendingCommand:
    id: int
    command: str
    args: Mapping[str, Any] | None


class Transport(Protocol):
    """Carries samples and acks to the hub and commands back, reconnecting as needed."""

    async def run(self, agent: Agent) -> None:
        """Work until ``agent.stopping`` is set, then flush and close cleanly."""

    async def send_ack(self, command_id: int, result: CommandResult) -> bool:
        """Send one ack if connected; False means it stays in the journal for later."""


class Agent:
    """The transport-independent part of an agent."""

    def __init__(
        self,
        *,
        identity: Identity,
        sample_source: Callable[[], Sample],
        spool: Spool,
        journal: Journal,
        interval: float,
        host_commands: Mapping[str, HostCommand] | None = None,
        sample_in_thread: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.spool = spool
        self.journal = journal
        self.interval = interval
        self._sample_source = sample_source
        self._sample_in_thread = sample_in_thread
        self._clock = clock
        self.handlers = Handlers(
            host_commands or {}, collect_now=self.collect_now, request_restart=self.request_restart
        )
        self.executor = CommandExecutor(journal, self.handlers, device_id=identity.device_id)
        self.stopping = asyncio.Event()
        self.sample_ready = asyncio.Event()
        self.exit_reason = ExitReason.STOPPED
        self.last_error = ""
        self._restart_requested = False
        self._commands: asyncio.Queue[PendingCommand] = asyncio.Queue()
        self._transport: Transport | None = None

    # Lifecycle

    async def run(self, transport: Transport) -> ExitReason:
        """Sample, execute and transport until ``stop()``; returns why it stopped."""
        self._transport = transport
        sampler = asyncio.create_task(self._sample_forever(), name="sampler")
        worker = asyncio.create_task(self._work_commands(), name="commands")
        try:
            await transport.run(self)
        finally:
            self.stopping.set()
            for task in (sampler, worker):
                task.cancel()
            await asyncio.gather(sampler, worker, return_exceptions=True)
        return self.exit_reason

    def stop(self, reason: ExitReason = ExitReason.STOPPED) -> None:
        """Ask the agent to flush and stop (safe from a signal handler callback)."""
        if not self.stopping.is_set():
            self.exit_reason = reason
            self.stopping.set()

    def request_restart(self) -> None:
        """The restart command: stop once its result is journaled and acked."""
        self._restart_requested = True

    async def wait_stopping(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the agent is stopping."""
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await self.stopping.wait()
        except TimeoutError:
            return False
        return True

    # Samples

    async def collect_now(self) -> None:
        """Take one sample into the spool and wake the transport."""
        sample = await self._take_sample()
        self.spool.extend([sample])
        self.sample_ready.set()

    async def _sample_forever(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                await self.collect_now()
            except Exception:  # e.g. the spool's disk is full: report, keep going
                log.exception("%s: could not store a sample", self.identity.device_id)
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:  # we fell behind (suspended laptop): skip, do not burst
                next_at = now + self.interval
            await self.wait_stopping(next_at - now)

    async def _take_sample(self) -> Sample:
        taken_at = self._clock()
        try:
            if self._sample_in_thread:
                sample = await asyncio.to_thread(self._sample_source)
            else:
                sample = self._sample_source()
            sample = dict(sample)
        except Exception as exc:
            log.warning("%s: sampling failed: %r", self.identity.device_id, exc)
            sample = {"status": "error", "last_error": f"sampling failed: {exc}"}
        sample.setdefault("hostname", self.identity.hostname)
        sample.setdefault("agent_version", self.identity.agent_version)
        if self.last_error and not sample.get("last_error"):
            sample["status"] = "error"
            sample["last_error"] = self.last_error
            self.last_error = ""  # reported once, like the seed agent's error field
        sample["ts"] = taken_at
        sample["spool_dropped"] = self.spool.dropped
        return sample

    # Commands

    def submit_command(self, command_id: int, command: str, args: Mapping[str, Any] | None) -> None:
        """Queue a command from the hub; it runs after the ones before it (FIFO)."""
        self._commands.put_nowait(PendingCommand(command_id, command, args))

    async def _work_commands(self) -> None:
        while True:
            pending = await self._commands.get()
            await self.handle_command(pending.id, pending.command, pending.args)

    async def handle_command(self, command_id: int, command: str, args: Mapping[str, Any] | None) -> None:
        """Execute (or answer from the journal) and ack one command."""
        try:
            result = await self.executor.execute(command_id, command, args)
            if result is not None:
                if result.extra.get("error") == "exception":
                    self.last_error = result.message  # rides on the next sample
                await self._send_ack(command_id, result)
        except Exception:
            log.exception("%s: command %d failed outside its handler", self.identity.device_id, command_id)
        if self._restart_requested:
            self.stop(ExitReason.RESTART)

    async def _send_ack(self, command_id: int, result: CommandResult) -> None:
        if self._transport is not None and not await self._transport.send_ack(command_id, result):
            log.info(
                "%s: ack of command %d kept for the next connection", self.identity.device_id, command_id
            )

    def unconfirmed_acks(self) -> list[tuple[int, CommandResult]]:
        return self.journal.unconfirmed()

    def close(self) -> None:
        """Release the spool and journal files."""
        self.spool.close()
        self.journal.close()
