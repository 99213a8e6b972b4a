"""Group commit: callers that arrive while a write is in flight share the next one.

The first caller starts a write at once (no added latency when alone); everyone who arrives
during it is written together in the following one. One transaction for a burst of first-seen
devices or of hellos, where one each made them wait in line behind the store's write lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """``write`` stores a batch and returns what its callers are told (the same for each)."""

    def __init__(self, write: Callable[[list[T]], Awaitable[R]]) -> None:
        self._write = write
        self._pending: list[T] = []
        self._done: asyncio.Future[R] | None = None  # resolves when ``_pending`` is written
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Return once ``item`` is written, with what its batch's write returned; raise what it
        raised.

        A caller cancelled while waiting leaves its item in the batch: it is written anyway.
        """
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        done = self._done
        self._pending.append(item)
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._run())
        return await asyncio.shield(done)

    async def _run(self) -> None:
        try:
            while self._pending:
                batch, done = self._pending, self._done
                self._pending, self._done = [], None
                assert done is not None
                try:
                    result = await self._write(batch)
                except Exception as exc:
                    done.set_exception(exc)
                    done.exception()  # retrieved: waiters that were cancelled must not warn
                else:
                    done.set_result(result)
        finally:
            self._drain = None
