"""A SQLite connection driven by a thread of its own, a whole transaction per hand-off.

aiosqlite hands every statement to its connection's thread and wakes the event loop with its
result: a transaction of ``BEGIN``, two statements and ``COMMIT`` is four round trips, each a
thread wake-up and a loop wake-up, and the write lock is held across all of them. On a loop busy
with 10,000 agents each round trip waits its turn: sample transactions of 0.3 ms of SQLite work
held the lock 2.3 ms on average and 37 ms at p99, and a pushed command's commit waited behind
them. Here a transaction is a plain function of a ``sqlite3.Connection``, run in the thread from
``BEGIN IMMEDIATE`` to ``COMMIT`` in one hand-off.

A thread doing background work (the roll-up) can run at a lower scheduling priority than the
event loop (``nice``): on Linux a thread has a nice value of its own, so while both want the CPU
the loop gets it, and the background work takes what the loop leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Body = Callable[[sqlite3.Connection], T]
log = logging.getLogger("monitor_server.store")


class SQLiteThread:
    """One ``sqlite3`` connection, used only from its own thread."""

    def __init__(self, path: Path, pragmas: Iterable[str], name: str, nice: int = 0) -> None:
        self._path = path
        self._pragmas = tuple(pragmas)
        self._name = name
        self._nice = nice  # added to the thread's nice value when it starts (Linux)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=self._name, initializer=lower_priority, initargs=(self._nice,)
        )
        self._conn = await self._call(self._connect)

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def run(self, body: Body[T]) -> T:
        """``body`` outside any transaction (a read, or the connection's own temporary tables)."""
        assert self._conn is not None, "store is not open"
        return await self._call(body, self._conn)

    async def write(self, body: Body[T], lock: threading.Lock) -> T:
        """``body`` in one write transaction, holding ``lock`` throughout: committed when it
        returns, rolled back when it raises."""
        assert self._conn is not None, "store is not open"
        return await self._call(in_transaction, self._conn, body, lock, "BEGIN IMMEDIATE")

    async def read(self, body: Body[T]) -> T:
        """``body`` in one read transaction (one snapshot; it may write temporary tables)."""
        assert self._conn is not None, "store is not open"
        return await self._call(in_transaction, self._conn, body, contextlib.nullcontext(), "BEGIN")

    def _connect(self) -> sqlite3.Connection:
        return connect(self._path, self._pragmas, check_same_thread=False)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the thread. Cancelled meanwhile, it still finishes (a transaction commits
        or rolls back) before the cancellation goes on: the caller's lock is not released while
        the connection is still in a transaction."""
        assert self._executor is not None, "store is not open"
        done = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait([done])
            if not done.cancelled():
                done.exception()  # retrieved: it goes nowhere, the caller was cancelled
            raise


def lower_priority(by: int) -> None:
    """Raise the calling thread's nice value by ``by`` (at most to 19). Linux only: elsewhere the
    nice value is the whole process's, and the event loop must keep its own."""
    if by <= 0 or sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except OSError as exc:  # a sandbox refusing it: the thread runs at the loop's priority
        log.warning("could not lower the priority of thread %d: %s", tid, exc)


def connect(path: Path, pragmas: Iterable[str], check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), rows as ``sqlite3.Row``."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.row_factory = sqlite3.Row
    for pragma in pragmas:
        conn.execute(pragma)
    return conn


def in_transaction(
    conn: sqlite3.Connection, body: Body[T], lock: contextlib.AbstractContextManager[Any], begin: str
) -> T:
    """``body`` between ``begin`` and ``COMMIT`` (``ROLLBACK`` when it raises), holding ``lock``."""
    with lock:
        conn.execute(begin)
        try:
            result = body(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
