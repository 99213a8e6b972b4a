"""Exactly-once effect over at-least-once delivery: consult the journal, run, journal, answer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from monitor_agent.handlers import Handlers
from monitor_agent.journal import EntryState, Journal
from monitor_agent.result import CommandResult, failure

log = logging.getLogger(__name__)


class CommandExecutor:
    """Turns a (possibly redelivered) command into its one result."""

    def __init__(self, journal: Journal, handlers: Handlers, *, device_id: str = "") -> None:
        self.journal = journal
        self.handlers = handlers
        self.device_id = device_id
        self._running: set[int] = set()

    async def execute(
        self, command_id: int, command: str, args: Mapping[str, Any] | None
    ) -> CommandResult | None:
        """The result to ack, or None while the same command is already running here."""
        entry = self.journal.get(command_id)
        if entry is not None and entry.result is not None:
            log.info(
                "%s: command %d (%s) was already run; answering from the journal",
                self.device_id,
                command_id,
                command,
            )
            return entry.result
        if command_id in self._running:
            return None  # redelivered while running: its ack follows when it finishes
        if entry is not None and entry.state is EntryState.RUNNING:
            # A previous process started it and died before recording the result: it may
            # have had its effect, so it is never run a second time.
            result = failure(
                f"{command}: the agent stopped while this command was running; not run again",
                error="interrupted",
            )
            self.journal.finish(command_id, result)
            return result
        return await self._run(command_id, command, args)

    async def _run(self, command_id: int, command: str, args: Mapping[str, Any] | None) -> CommandResult:
        try:
            self.journal.begin(command_id, command)
        except OSError as exc:
            log.error("%s: cannot journal command %d: %s", self.device_id, command_id, exc)
            return failure(f"{command}: not run, the agent cannot write its journal: {exc}", error="journal")
        self._running.add(command_id)
        log.info("%s: running command %d (%s)", self.device_id, command_id, command)
        try:
            result = await self.handlers.run(command, args)
        except Exception as exc:  # a broken handler must not kill the daemon
            log.exception("%s: command %d (%s) raised", self.device_id, command_id, command)
            result = failure(f"{command} failed: {type(exc).__name__}: {exc}", error="exception")
        finally:
            self._running.discard(command_id)
        self.journal.finish(command_id, result)
        return result
