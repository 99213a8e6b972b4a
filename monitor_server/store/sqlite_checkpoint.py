"""WAL checkpoints on a connection of their own, outside the store's write lock.

SQLite's automatic checkpoint runs inside the ``COMMIT`` that crosses its threshold, on the
connection that committed: the transaction is over, but the store's write lock is held until the
call returns. Copying 4,000 WAL pages into the database took 50-63 ms on the bench machine, and
every write (a pushed command's insert among them) waited for it: at 1,000 agents, the commands
that found the lock taken waited up to 57 ms, and the hub wrote 9-12 of 600 pushes more than
10 ms after their enqueue. A WAL checkpoint runs beside writers (they go on appending to the WAL
while it copies), so every connection here has the automatic checkpoint off, and a
``Checkpointer`` runs a ``PASSIVE`` one on its own thread, with no lock, once the WAL holds
``CHECKPOINT_PAGES`` frames: the threshold the automatic checkpoint had (SQLite's default is
1,000; at 4,000 the pages every small transaction rewrites, the devices table's and the indexes'
ends, are copied a quarter as often). How many frames the WAL holds is read from the wal-index
header (``-shm``) every ``POLL_INTERVAL``: a read of 20 bytes, no SQLite call.

The ``-shm`` file is opened once and closed only after every SQLite connection of the process
to the database has closed (``SQLiteStore.close`` closes the checkpointer last). Closing any
descriptor of a file drops every POSIX lock the process holds on it, SQLite's among them
(https://www.sqlite.org/howtocorrupt.html, 2.2): a read that opened and closed ``-shm`` each
time let the next process that opened the database (``sqlite3``, a backup, a script) find no
connection holding it, reset the wal-index under the hub's mapping, and the hub died of
``SIGBUS`` in its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from monitor_server.store.sqlite_thread import SQLiteThread

log = logging.getLogger("monitor_server.store")

CHECKPOINT_PAGES = 4_000  # WAL frames that start a checkpoint
POLL_INTERVAL = 0.25  # seconds between looks at the WAL's size
NO_AUTOCHECKPOINT = "PRAGMA wal_autocheckpoint=0"
# The wal-index header (https://www.sqlite.org/walformat.html): mxFrame, the WAL's last valid
# frame, is the 32-bit integer at byte 16, in the machine's byte order.
_MX_FRAME = slice(16, 20)


class Checkpointer:
    """A ``PASSIVE`` checkpoint of the database's WAL whenever it holds ``pages`` frames or more,
    on a thread and connection of its own, while open."""

    def __init__(
        self,
        path: Path,
        pragmas: Iterable[str],
        pages: int = CHECKPOINT_PAGES,
        poll: float = POLL_INTERVAL,
    ) -> None:
        self._thread = SQLiteThread(path, pragmas, "sqlite-checkpoint")
        self._shm = path.with_name(path.name + "-shm")
        self._index: int | None = None  # the ``-shm`` file's descriptor, open until ``close``
        self._pages = pages
        self._poll = poll
        self._task: asyncio.Task[None] | None = None
        self._checked = -1  # the WAL's frames at the last checkpoint: none again until they change
        self.done = 0  # checkpoints run since the store opened

    async def open(self) -> None:
        await self._thread.open()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sqlite-checkpoint")

    async def stop(self) -> None:
        """No checkpoint from now on; the ``-shm`` file stays open until ``close``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._thread.close()

    async def close(self) -> None:
        """Stop, and close the ``-shm`` file: only once no connection of this process to the
        database is open (closing it drops the process's locks on it)."""
        await self.stop()
        if self._index is not None:
            os.close(self._index)
            self._index = None

    def frames(self) -> int:
        """The frames in the WAL now; 0 while its wal-index cannot be read (the next look tries
        again; no checkpoint meanwhile, writers are not held)."""
        try:
            if self._index is None:
                self._index = os.open(self._shm, os.O_RDONLY)
            return wal_frames(self._index)
        except FileNotFoundError:  # no connection has used the database yet
            return 0
        except OSError as exc:
            log.warning("WAL size not read from %s: %s", self._shm.name, exc)
            return 0

    async def checkpoint(self) -> tuple[int, int]:
        """One ``PASSIVE`` checkpoint now: the WAL's frames, and how many of them are in the
        database (all of them unless a reader still needs the older ones)."""
        frames, copied = await self._thread.run(_passive)
        self._checked = frames
        self.done += 1
        return frames, copied

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            frames = self.frames()
            if frames < self._pages or frames == self._checked:
                continue
            try:
                await self.checkpoint()
            except sqlite3.Error as exc:  # the next look tries again; writers are not held meanwhile
                log.warning("WAL checkpoint failed: %s", exc)


def wal_frames(index: int) -> int:
    """The frames in the WAL whose wal-index (``-shm``) is open as ``index``; 0 before its header
    is written. The descriptor is never closed here (see the module's docstring)."""
    header = os.pread(index, _MX_FRAME.stop, 0)
    if len(header) < _MX_FRAME.stop:
        return 0
    return int.from_bytes(header[_MX_FRAME], sys.byteorder)


def _passive(db: sqlite3.Connection) -> tuple[int, int]:
    _busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames), int(copied)
