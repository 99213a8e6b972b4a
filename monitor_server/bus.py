"""In-process event bus: publish never waits; each subscriber has a bounded queue.

A subscriber that falls ``maxsize`` events behind is cut off (``Subscription.overflowed``) rather
than allowed to grow memory or slow the publisher. Dashboards subscribe here. Events are the
typed ones of ``monitor_server.events``; publishers build them there, never as ad-hoc dicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from monitor_server.events import HubEvent


class Subscription:
    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[HubEvent | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: HubEvent) -> bool:
        """Queue ``event``; on overflow mark the subscription dead and wake its reader."""
        if self.overflowed:
            return False
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._queue.get_nowait()  # make room for the wake-up sentinel
            self._queue.put_nowait(None)
            return False
        return True

    async def get(self) -> HubEvent | None:
        """The next event, or ``None`` once the subscription has overflowed."""
        event = await self._queue.get()
        return None if self.overflowed and event is None else event

    def pending(self) -> int:
        return self._queue.qsize()


class EventBus:
    def __init__(self, default_maxsize: int = 1024) -> None:
        self._subscribers: set[Subscription] = set()
        self._default_maxsize = default_maxsize
        # Told every event published here (several hubs: passed on to the others, DESIGN §13).
        self.tap: Callable[[HubEvent], None] | None = None

    def publish(self, event: HubEvent) -> None:
        if self.tap is not None:
            self.tap(event)
        for subscription in list(self._subscribers):
            if not subscription.offer(event):
                self._subscribers.discard(subscription)

    @asynccontextmanager
    async def subscribe(self, maxsize: int | None = None) -> AsyncIterator[Subscription]:
        subscription = Subscription(maxsize or self._default_maxsize)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
