"""One hub per SQLite file: an exclusive OS lock on ``<db>.lock``, taken before anything else.

A second hub on the same database would rebuild presence (every connected device marked
offline, ``hub_restart``) before failing to bind its port. ``flock`` locks belong to the open
file, so the kernel releases them when the process ends however it ends, SIGKILL included:
there is never a stale lock to clean up. The file itself stays (deleting it would race with a
hub opening it); it holds the owner's pid, for the refusal message only.

``monitor-server backup`` does not take the lock: it copies a running hub's database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class DatabaseInUse(RuntimeError):
    """Another process holds the database's lock."""


class DatabaseLock:
    """Held until ``release()`` or until the process ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def lock_path(db: Path | str) -> Path | None:
    """``<db>.lock`` beside a SQLite file; None for a database that is not a local file."""
    text = str(db)
    if text.startswith(("postgres:", "postgresql:")):
        return None  # several hubs may share a server database
    path = Path(text.removeprefix("sqlite:///"))
    return path.with_name(path.name + ".lock")


def lock_database(db: Path | str) -> DatabaseLock | None:
    """Take the database's lock without waiting; DatabaseInUse names the pid that holds it."""
    path = lock_path(db)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not O_TRUNC: until the lock is ours, the pid in the file is the owner's.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        owner = _read_pid(fd)
        os.close(fd)
        if not isinstance(exc, BlockingIOError):
            raise
        who = f"pid {owner}" if owner else "another process"
        raise DatabaseInUse(
            f"{db} is in use by another hub ({who}, lock file {path}); "
            "stop that hub first, or give this one its own database (--db / MONITOR_DB)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DatabaseLock(path, fd)


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None
