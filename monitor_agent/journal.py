"""Which commands this agent has run, and what they returned: the basis of exactly-once effect.

An entry is written (and fsync'd) *before* a command runs ("running") and again with its
result *before* the ack is sent ("done"). A redelivered command is answered from here.
A "running" entry found after a crash means the command may have had its effect: it is
answered as interrupted and never run again. Entries become "confirmed" once the hub says
``acked``; unconfirmed results are re-sent after every reconnect.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from monitor_agent.result import CommandResult
from protocol.errors import FrameDecodeError
from protocol.plain import decode_json, encode_json


class EntryState(StrEnum):
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True)
class Entry:
    id: int
    command: str
    state: EntryState
    result: CommandResult | None = None
    confirmed: bool = False


class Journal(Protocol):
    def get(self, command_id: int) -> Entry | None: ...

    def begin(self, command_id: int, command: str) -> None:
        """Durably note that the command is about to run."""

    def finish(self, command_id: int, result: CommandResult) -> None:
        """Durably store the command's result."""

    def confirm(self, command_id: int) -> None:
        """The hub stored our ack; it need not be re-sent."""

    def unconfirmed(self) -> list[tuple[int, CommandResult]]:
        """Results not yet confirmed by the hub, oldest first."""

    def close(self) -> None: ...


class MemoryJournal:
    """Journal for simulated agents and tests: same rules, no file."""

    def __init__(self, keep: int = 10_000) -> None:
        self.keep = keep
        self._entries: dict[int, Entry] = {}

    def get(self, command_id: int) -> Entry | None:
        return self._entries.get(command_id)

    def begin(self, command_id: int, command: str) -> None:
        self._apply({"id": command_id, "state": "running", "command": command})

    def finish(self, command_id: int, result: CommandResult) -> None:
        self._apply({"id": command_id, "state": "done", "result": result.to_json()})

    def confirm(self, command_id: int) -> None:
        if command_id in self._entries:
            self._apply({"id": command_id, "state": "confirmed"})

    def unconfirmed(self) -> list[tuple[int, CommandResult]]:
        return [(e.id, e.result) for e in self._entries.values() if e.result is not None and not e.confirmed]

    def close(self) -> None:
        """Nothing to release."""

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def _apply(self, record: dict[str, Any]) -> None:
        cid = int(record["id"])
        state = record["state"]
        old = self._entries.get(cid)
        if state == "running":
            self._entries[cid] = Entry(cid, str(record.get("command", "")), EntryState.RUNNING)
        elif state == "done":
            result = CommandResult.from_json(record["result"])
            command = old.command if old else str(record.get("command", ""))
            self._entries[cid] = Entry(cid, command, EntryState.DONE, result)
        elif state == "confirmed" and old is not None:
            self._entries[cid] = replace(old, confirmed=True)
        self._trim()

    def _trim(self) -> None:
        # Only confirmed entries may be forgotten: the hub will never send those again.
        excess = len(self._entries) - self.keep
        if excess <= 0:
            return
        for cid in [e.id for e in self._entries.values() if e.confirmed][:excess]:
            del self._entries[cid]


class FileJournal(MemoryJournal):
    """JSON lines in the state folder; every result is fsync'd before it is acted upon."""

    def __init__(self, path: Path, keep: int = 10_000) -> None:
        super().__init__(keep)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lines = 0
        if path.exists():
            self._load()
        self._file = path.open("ab")
        if self._lines > 2 * len(self._entries) + 1000:
            self._compact()

    def begin(self, command_id: int, command: str) -> None:
        super().begin(command_id, command)
        self._write({"id": command_id, "state": "running", "command": command, "at": time.time()})

    def finish(self, command_id: int, result: CommandResult) -> None:
        entry = self.get(command_id)
        command = entry.command if entry else ""
        record = {
            "id": command_id,
            "state": "done",
            "command": command,
            "result": result.to_json(),
            "at": time.time(),
        }
        super().finish(command_id, result)
        self._write(record)

    def confirm(self, command_id: int) -> None:
        if self.get(command_id) is None:
            return
        # Not fsync'd: losing a confirmation only means one more (harmless) re-sent ack.
        super().confirm(command_id)
        self._write({"id": command_id, "state": "confirmed"}, sync=False)

    def close(self) -> None:
        self._file.close()

    def _write(self, record: dict[str, Any], *, sync: bool = True) -> None:
        self._file.write(encode_json(record) + b"\n")
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
        self._lines += 1
        if self._lines > 2 * len(self._entries) + 1000:
            self._compact()

    def _load(self) -> None:
        with self.path.open("rb") as handle:
            for line in handle:
                self._lines += 1
                try:
                    record = decode_json(line)
                except FrameDecodeError:
                    continue  # a line torn by a crash mid-write: the record never took effect
                if isinstance(record, dict) and "id" in record and "state" in record:
                    self._apply(record)

    def _compact(self) -> None:
        temp = self.path.with_suffix(".tmp")
        with temp.open("wb") as handle:
            for entry in self._entries.values():
                for record in _records(entry):
                    handle.write(encode_json(record) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._file.close()
        os.replace(temp, self.path)
        self._file = self.path.open("ab")
        self._lines = len(self._entries)


def _records(entry: Entry) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [{"id": entry.id, "state": "running", "command": entry.command}]
    if entry.result is not None:
        records.append({"id": entry.id, "state": "done", "result": entry.result.to_json()})
    if entry.confirmed:
        records.append({"id": entry.id, "state": "confirmed"})
    return records
