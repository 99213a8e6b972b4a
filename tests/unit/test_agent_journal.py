"""The command journal: results kept on disk, unconfirmed acks, interrupted commands, compaction."""

from __future__ import annotations

from pathlib import Path

from monitor_agent.journal import EntryState, FileJournal, MemoryJournal
from monitor_agent.result import CommandResult


def test_result_survives_reopen(tmp_path: Path) -> None:
    """A finished command's result is read back by a new process."""
    path = tmp_path / "journal.jsonl"
    journal = FileJournal(path)
    journal.begin(7, "echo")
    journal.finish(7, CommandResult(True, "hi", {"args": {"x": 1}}))
    journal.close()
    again = FileJournal(path)
    entry = again.get(7)
    assert entry is not None and entry.state is EntryState.DONE
    assert entry.result == CommandResult(True, "hi", {"args": {"x": 1}})
    again.close()


def test_unconfirmed_until_acked(tmp_path: Path) -> None:
    """A result is re-sendable until the hub confirms it, also across restarts."""
    path = tmp_path / "journal.jsonl"
    journal = FileJournal(path)
    for cid in (1, 2):
        journal.begin(cid, "ping")
        journal.finish(cid, CommandResult(True, "pong"))
    journal.confirm(1)
    journal.close()
    again = FileJournal(path)
    assert [cid for cid, _ in again.unconfirmed()] == [2]
    again.close()


def test_running_entry_is_visible_after_a_crash(tmp_path: Path) -> None:
    """A command begun but never finished is found as RUNNING by the next process."""
    path = tmp_path / "journal.jsonl"
    journal = FileJournal(path)
    journal.begin(3, "reboot")
    journal.close()
    again = FileJournal(path)
    entry = again.get(3)
    again.close()
    assert entry is not None and entry.state is EntryState.RUNNING and entry.result is None


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    """A half-written line (crash mid-write) does not stop the journal from loading."""
    path = tmp_path / "journal.jsonl"
    journal = FileJournal(path)
    journal.begin(1, "ping")
    journal.finish(1, CommandResult(True, "pong"))
    journal.close()
    with path.open("ab") as handle:
        handle.write(b'{"id": 2, "sta')
    again = FileJournal(path)
    assert again.get(1) is not None
    again.close()


def test_compaction_keeps_what_matters(tmp_path: Path) -> None:
    """The file is rewritten when it grows; unconfirmed and recent results survive."""
    path = tmp_path / "journal.jsonl"
    journal = FileJournal(path, keep=50)
    for cid in range(1, 801):
        journal.begin(cid, "ping")
        journal.finish(cid, CommandResult(True, "pong"))
        if cid != 5:
            journal.confirm(cid)
    journal.close()
    assert len(path.read_bytes().splitlines()) < 1500
    again = FileJournal(path, keep=50)
    assert [cid for cid, _ in again.unconfirmed()] == [5]
    assert again.get(800) is not None
    again.close()


def test_memory_journal_forgets_only_confirmed() -> None:
    """Over its size the in-memory journal drops confirmed entries, never unconfirmed ones."""
    journal = MemoryJournal(keep=2)
    for cid in (1, 2, 3):
        journal.begin(cid, "ping")
        journal.finish(cid, CommandResult(True, "pong"))
    assert {e.id for e in journal.entries()} == {1, 2, 3}
    journal.confirm(3)
    assert {e.id for e in journal.entries()} == {1, 2}
