"""asyncio's Queue and Event as one connection uses them, without a deque each.

Every connection holds a few of these for its whole life; asyncio's allocate a deque each (about
760 bytes) before anything waits. At 10,000 agents that was a fifth of the hub's memory per
connection (tracemalloc: 35.0 -> 25.7 KiB traced per idle agent with these and lazy acks).

uvicorn keeps an ``asyncio.Queue`` per connection between the socket and the application: three
deques and an ``asyncio.Event`` (a fourth), about 3 KiB before anything is queued. It pauses
reading after every message, so the queue holds one or two messages at a time and has one reader
(the application's ``receive``). This keeps them in a list and wakes that reader with a future
made only while it waits.
"""

from __future__ import annotations

import asyncio
from typing import Any


class ReceiveQueue:
    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Wakeup:
    """``asyncio.Event``'s set/clear/is_set/wait; the waiters share one future, made when one waits."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        while not self._set:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # Another waiter was cancelled, and with it the future they shared: wait again.
        return True
