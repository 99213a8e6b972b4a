"""The embedded case: one hub on its SQLite file, no one to tell, every singleton runs here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from monitor_server.cluster import NoticeHandler, RevivalHandler, TakeoverHandler
from monitor_server.cluster.notice import Notice


class LocalCluster:
    hub_id: str | None = None

    async def start(
        self, on_notice: NoticeHandler, on_takeover: TakeoverHandler, on_revived: RevivalHandler
    ) -> None:
        return None

    async def stop(self) -> None:
        return None

    def tell(self, notice: Notice) -> None:
        return None

    async def other_hubs(self) -> set[str]:
        return set()

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        yield True
