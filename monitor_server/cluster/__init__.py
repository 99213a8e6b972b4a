"""Hubs sharing one database (DESIGN §13): what one hub tells the others, and who runs the singletons.

``LocalCluster`` is the embedded case (SQLite: one hub, nothing to tell); ``PgCluster`` signals
other hubs through PostgreSQL LISTEN/NOTIFY, heartbeats in ``hubs`` and takes over a dead hub's
devices. The hub reacts to what others tell it in ``monitor_server.cluster.relay``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from monitor_server.cluster.notice import Notice
from monitor_server.store.base import Store
from monitor_server.store.records import PresenceEvent

# Told every notice another hub sent, once, in the order they committed.
NoticeHandler = Callable[[Notice], Awaitable[None]]
# Told when this hub finds it was taken for dead (its heartbeat stalled): it claims its sessions again.
RevivalHandler = Callable[[], Awaitable[None]]
# Whether this hub runs the named singleton now (several hubs: one at a time).
Exclusive = Callable[[str], AbstractAsyncContextManager[bool]]
# Told the presence changes this hub made when it took over a dead hub's devices.
TakeoverHandler = Callable[[list[PresenceEvent]], None]


class Cluster(Protocol):
    @property
    def hub_id(self) -> str | None:
        """This hub's id in the ``hubs`` table; None when it is the only hub (embedded store)."""
        ...

    async def start(
        self, on_notice: NoticeHandler, on_takeover: TakeoverHandler, on_revived: RevivalHandler
    ) -> None: ...
    async def stop(self) -> None: ...
    def tell(self, notice: Notice) -> None:
        """Queue a notice for the other hubs; never waits (sent in batches, in order)."""
        ...

    async def other_hubs(self) -> set[str]:
        """Hubs alive now besides this one."""
        ...

    def exclusive(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Whether this hub runs singleton ``name`` now (True for one hub at a time)."""
        ...


def is_postgres(db: object) -> bool:
    return str(db).startswith(("postgres://", "postgresql://"))


def open_cluster(db: object, store: Store, heartbeat: float = 2.0, lost_after: float = 10.0) -> Cluster:
    """PostgreSQL: this hub joins the others on that database; SQLite: it is alone."""
    if not is_postgres(db):
        from monitor_server.cluster.local import LocalCluster

        return LocalCluster()
    from monitor_server.cluster.postgres import PgCluster

    return PgCluster(str(db), store, heartbeat=heartbeat, lost_after=lost_after)
