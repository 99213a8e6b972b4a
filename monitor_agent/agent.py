"""One agent: samples into its spool, runs commands once, and hands both to a transport.

Every sample goes through the spool, connected or not; the transport drains it oldest
first and removes samples only once the hub has stored them. Replay after an outage and live
sending are therefore the same path, and order is kept without a mode switch. The transport
sees the agent only through ``AgentPorts`` (monitor_agent/ports.py).

Nothing here is process-global: many ``Agent`` objects can share one event loop (the
simulator does that), each with its own sample source, spool and journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from monitor_agent.config import HostCommand
from monitor_agent.executor import CommandExecutor
from monitor_agent.handlers import Handlers
from monitor_agent.journal import Journal
from monitor_agent.ports import AgentPorts
from monitor_agent.result import CommandResult
from monitor_agent.spool import NONE, Sample, Spool

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
    instance_id: str = ""  # generated at first start, kept in the state folder (see identity.py)
    tags: tuple[str, ...] = ()  # from the config, reported in hello


@dataclass(frozen=True)
class PendingCommand:
    id: int
    command: str
    args: Mapping[str, Any] | None


class Transport(Protocol):
    """Carries samples and acks to the hub and commands back, reconnecting as needed."""

    async def run(self, ports: AgentPorts) -> None:
        """Work until ``ports.stop.stopping`` is set, then flush and close cleanly."""


@dataclass(frozen=True)
class SpoolOutbox:
    """The spool as a transport sees it (``ports.SampleOutbox``)."""

    spool: Spool
    ready: asyncio.Event

    def peek(self, limit: int, exclude: Collection[int] = NONE) -> list[tuple[int, Sample]]:
        return self.spool.peek(limit, exclude)

    def remove(self, keys: Iterable[int]) -> None:
        self.spool.remove(keys)


@dataclass(frozen=True)
class JournalAcks:
    """Unconfirmed results as a transport sees them (``ports.AckOutbox``).

    ``unjournaled`` holds the results the journal could not take (its disk failed): they are
    acked all the same, from memory.
    """

    journal: Journal
    unjournaled: dict[int, CommandResult]
    ready: asyncio.Event

    def unconfirmed(self) -> list[tuple[int, CommandResult]]:
        return [*self.journal.unconfirmed(), *self.unjournaled.items()]

    def confirm(self, command_id: int) -> None:
        self.unjournaled.pop(command_id, None)
        self.journal.confirm(command_id)


@dataclass(frozen=True)
class CommandQueue:
    """The agent's command queue as a transport sees it (``ports.CommandSink``)."""

    submit_command: Callable[[int, str, Mapping[str, Any] | None], None]
    queue: asyncio.Queue[PendingCommand]

    def submit(self, command_id: int, command: str, args: Mapping[str, Any] | None) -> None:
        self.submit_command(command_id, command, args)

    async def join(self) -> None:
        await self.queue.join()


class StopFlag:
    """Set once, with the reason (``ports.StopSignal``)."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.reason = ExitReason.STOPPED

    @property
    def restarting(self) -> bool:
        return self.reason is ExitReason.RESTART

    def set(self, reason: ExitReason) -> None:
        if not self.stopping.is_set():
            self.reason = reason
            self.stopping.set()


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
        self._stop = StopFlag()
        self.stopping = self._stop.stopping
        self.sample_ready = asyncio.Event()
        self.ack_ready = asyncio.Event()
        self._unjournaled: dict[int, CommandResult] = {}
        self._acks = JournalAcks(journal, self._unjournaled, self.ack_ready)
        self.last_error = ""
        self._restart_requested = False
        self._commands: asyncio.Queue[PendingCommand] = asyncio.Queue()

    @property
    def exit_reason(self) -> ExitReason:
        return self._stop.reason

    def ports(self) -> AgentPorts:
        """What a transport may use of this agent."""
        return AgentPorts(
            identity=self.identity,
            capabilities=tuple(self.handlers.capabilities()),
            samples=SpoolOutbox(self.spool, self.sample_ready),
            commands=CommandQueue(self.submit_command, self._commands),
            acks=self._acks,
            stop=self._stop,
        )

    # Lifecycle

    async def run(self, transport: Transport) -> ExitReason:
        """Sample, execute and transport until ``stop()``; returns why it stopped."""
        sampler = asyncio.create_task(self._sample_forever(), name="sampler")
        worker = asyncio.create_task(self._work_commands(), name="commands")
        try:
            await transport.run(self.ports())
        finally:
            self.stopping.set()
            for task in (sampler, worker):
                task.cancel()
            await asyncio.gather(sampler, worker, return_exceptions=True)
        return self.exit_reason

    def stop(self, reason: ExitReason = ExitReason.STOPPED) -> None:
        """Ask the agent to flush and stop (safe from a signal handler callback)."""
        self._stop.set(reason)

    def request_restart(self) -> None:
        """The restart command: stop once its result is journaled (the flush sends its ack)."""
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
            try:
                await self.handle_command(pending.id, pending.command, pending.args)
            finally:
                self._commands.task_done()

    async def handle_command(self, command_id: int, command: str, args: Mapping[str, Any] | None) -> None:
        """Execute (or answer from the journal) one command; its ack is then due (``ack_ready``)."""
        try:
            result = await self.executor.execute(command_id, command, args)
            if result is not None:
                if result.extra.get("error") == "exception":
                    self.last_error = result.message  # rides on the next sample
                entry = self.journal.get(command_id)
                if entry is None or entry.result is None:
                    self._unjournaled[command_id] = result
                self.ack_ready.set()
        except Exception:
            log.exception("%s: command %d failed outside its handler", self.identity.device_id, command_id)
        if self._restart_requested:
            self.stop(ExitReason.RESTART)

    def unconfirmed_acks(self) -> list[tuple[int, CommandResult]]:
        return self._acks.unconfirmed()

    def close(self) -> None:
        """Release the spool and journal files."""
        self.spool.close()
        self.journal.close()
