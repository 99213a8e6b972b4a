"""SQLite's write paths: the threads' transactions, the loop's inline ones, and the one write lock.

The frequent writes run a whole transaction per hand-off to a thread, taking the write lock
there; a command's insert runs on the event loop's thread when the lock is free; the other writes
drive a transaction statement by statement from the loop. These hold the paths to one writer at a
time, in order, whatever is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor_server.store import Sample
from monitor_server.store.sqlite import ROLLUP_NICE, SQLiteStore
from monitor_server.store.sqlite_checkpoint import NO_AUTOCHECKPOINT, Checkpointer, wal_frames
from monitor_server.store.sqlite_thread import lower_priority
from tests.agentd import eventually


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "hub.db")
    await opened.open()
    yield opened
    await opened.close()


def sample(device: str, ts: float) -> Sample:
    return Sample(device, ts, 1.0, 2.0, 3.0, 10, "ok", {})


async def test_a_command_enqueued_while_another_transaction_holds_the_lock_is_stored_after_it(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """The loop cannot take the held lock: the command waits on the writes' thread instead of
    writing beside the transaction (SQLite would refuse it, busy) and is stored once it ends."""
    async with store._tx() as db:  # a transaction driven from the loop holds the lock
        await db.execute("INSERT INTO devices (device_id, first_seen) VALUES ('held', 1)")
        queued = asyncio.ensure_future(store.create_command("dev", "ping", None, 2.0))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not queued.done()
    created, is_new = await queued
    assert is_new
    with contextlib.closing(sqlite3.connect(tmp_path / "hub.db")) as conn:
        assert conn.execute("SELECT device_id FROM devices").fetchall() == [("held",)]
        assert conn.execute("SELECT id, device_id FROM commands").fetchall() == [(created.id, "dev")]
    assert not store._write_lock.locked()


async def test_commands_created_inline_and_queued_beside_samples_are_all_stored(store: SQLiteStore) -> None:
    """Commands created while samples are queued for the thread (some inline, some queued when
    the lock was taken): each stored once, under its own id, and read back by the inline read."""
    writes = [
        asyncio.ensure_future(store.write_samples([sample(f"d{n}", 100.0 + n)], 100.0 + n)) for n in range(10)
    ]
    commands = [
        asyncio.ensure_future(store.create_command(f"d{n}", "ping", {"n": n}, 1.0 + n)) for n in range(10)
    ]
    await asyncio.gather(*writes)
    created = [c for c, _ in await asyncio.gather(*commands)]
    assert len({c.id for c in created}) == 10
    for n, command in enumerate(created):
        device = await store.get_device(f"d{n}")
        assert device is not None
        assert device.last_seen == 100.0 + n
        assert await store.get_command(f"d{n}", command.id) == command


async def test_a_write_cancelled_in_its_thread_still_ends_its_transaction_and_frees_the_lock(
    store: SQLiteStore,
) -> None:
    writing = asyncio.ensure_future(store.write_samples([sample("a", 1.0)], 1.0))
    await asyncio.sleep(0)  # handed to the thread
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    assert not store._write_lock.locked()
    await store.write_samples([sample("b", 2.0)], 2.0)  # the connection is not left in a transaction
    assert [s.device_id for s in await store.query_samples("a", None, None, 10)] == ["a"]
    assert [s.device_id for s in await store.query_samples("b", None, None, 10)] == ["b"]


async def test_a_loop_transaction_cancelled_while_waiting_for_the_lock_does_not_keep_it(
    store: SQLiteStore,
) -> None:
    async with store._tx():
        waiting = asyncio.ensure_future(store.rename_device("x", "name"))
        await asyncio.sleep(0)
        waiting.cancel()
    # The lock it was waiting for is taken for it once free, and given back as it is cancelled.
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not store._write_lock.locked()
    await store.write_samples([sample("x", 1.0)], 1.0)
    assert (await store.rename_device("x", "renamed")) is not None


def _nice_of_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="a thread has a nice value of its own only on Linux")
async def test_the_roll_up_thread_runs_nicer_than_the_loop_and_the_writes_thread_does_not(
    store: SQLiteStore,
) -> None:
    loop_nice = _nice_of_thread()
    roller_nice = await store._roller.run(lambda db: _nice_of_thread())
    writes_nice = await store._writes.run(lambda db: _nice_of_thread())
    assert roller_nice == min(19, loop_nice + ROLLUP_NICE) > loop_nice
    assert writes_nice == loop_nice == _nice_of_thread()  # the loop's own is left as it was
    await store.write_samples([sample("d1", 1_000.0), sample("d1", 1_010.0)], 1_010.0)
    assert await store.roll_up() == 2  # the nicer thread still folds


def test_lowering_by_nothing_leaves_the_thread_as_it_is() -> None:
    before = _nice_of_thread()
    lower_priority(0)
    assert _nice_of_thread() == before


def _autocheckpoint(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


async def test_no_connection_checkpoints_in_its_commit_and_the_checkpointer_copies_the_wal(
    store: SQLiteStore,
) -> None:
    """A checkpoint in a commit would hold the write lock: the checkpointer's runs without it."""
    assert await store._writes.run(_autocheckpoint) == 0
    assert await store._roller.run(_autocheckpoint) == 0
    assert store._inline is not None and _autocheckpoint(store._inline) == 0
    await store.write_samples([sample(f"d{n}", 1_000.0 + n) for n in range(500)], 1_500.0)
    frames, copied = await store._checkpointer.checkpoint()
    assert frames > 0 and copied == frames  # every frame of the WAL is in the database now
    store._write_lock.acquire()  # a writer holding the lock does not hold up a checkpoint
    try:
        frames, copied = await asyncio.wait_for(store._checkpointer.checkpoint(), 10)
        assert copied == frames
    finally:
        store._write_lock.release()


def _wal_database(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(NO_AUTOCHECKPOINT)
    db.execute("CREATE TABLE IF NOT EXISTS t (x BLOB)")
    return db


def test_the_wal_s_frames_are_read_from_its_index(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    db = _wal_database(path)
    index = os.open(path.with_name("hub.db-shm"), os.O_RDONLY)
    try:
        for _ in range(20):
            db.execute("INSERT INTO t VALUES (randomblob(3000))")
        frames = wal_frames(index)
        assert frames > 20
        assert db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] == frames
        db.close()
    finally:
        os.close(index)  # after the connection: closing it drops the process's locks on the file


# A hub's store in a process of its own, writing 500 samples, looking at its WAL's size, and
# waiting for a line before the next 500; then it prints how many it holds.
_HUB = """
import asyncio, sys
from pathlib import Path
from monitor_server.store import Sample
from monitor_server.store.sqlite import SQLiteStore

async def main() -> None:
    store = SQLiteStore(Path(sys.argv[1]))
    await store.open()
    for n in range(2):
        rows = [Sample("d", 1.8e9 + 1000 * n + i, 1.0, 2.0, 3.0, 10, "ok", {}) for i in range(500)]
        await store.write_samples(rows, 1.8e9)
        store._checkpointer.frames()  # what its every poll does
        print("stored", flush=True)
        sys.stdin.readline()
    print(len(await store.query_samples("d", None, None, 5000)), flush=True)
    await store.close()

asyncio.run(main())
"""


# The wal-index's "dead man switch": every process with a connection holds a shared lock on this
# byte of ``-shm``; one that gets it exclusively takes the index for abandoned and resets it.
# https://www.sqlite.org/walformat.html (2.3.1, "DMS"); SQLite's os_unix.c, UNIX_SHM_DMS.
_DMS = 128


def _held_by_another_process(shm: Path) -> bool:
    fd = os.open(shm, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _DMS)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _DMS)
        return False
    finally:
        os.close(fd)


async def test_another_process_opening_the_database_leaves_the_hub_writing(tmp_path: Path) -> None:
    """A process that opens the database while the hub runs (``sqlite3``, a backup, a script)
    must find the hub's connections holding the WAL index. The checkpointer once opened and
    closed the ``-shm`` file at every look, which dropped the hub's locks on it: the outside
    reader reset the index under the hub's mapping and the hub died of SIGBUS in its next write."""
    path = tmp_path / "hub.db"
    hub = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HUB, str(path), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert hub.stdin is not None and hub.stdout is not None
    try:
        for stored in (500, 1000):
            assert await hub.stdout.readline() == b"stored\n"
            assert _held_by_another_process(path.with_name("hub.db-shm"))
            outside = sqlite3.connect(path)
            assert outside.execute("SELECT count(*) FROM samples").fetchone()[0] == stored
            outside.close()
            hub.stdin.write(b"go\n")
            await hub.stdin.drain()
        assert await hub.stdout.readline() == b"1000\n"
        assert await hub.wait() == 0
    finally:
        if hub.returncode is None:
            hub.kill()
            await hub.wait()


async def test_the_checkpointer_copies_the_wal_once_it_holds_its_pages(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    db = _wal_database(path)
    checkpointer = Checkpointer(path, (NO_AUTOCHECKPOINT,), pages=100, poll=0.01)
    await checkpointer.open()

    async def checkpointed() -> bool:
        return checkpointer.done >= 1

    try:
        for _ in range(60):  # 2 pages a row: past 100 frames
            db.execute("INSERT INTO t VALUES (randomblob(6000))")
        await eventually(checkpointed, what="a checkpoint of the grown WAL")
        assert path.stat().st_size >= 60 * 6_000  # copied into the database
    finally:
        db.close()
        await checkpointer.close()  # its task cancelled while it sleeps or while one runs
