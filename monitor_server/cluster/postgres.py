"""Several hubs on one PostgreSQL database: notices over LISTEN/NOTIFY, heartbeats, takeover, singletons.

- A notice is a row of ``hub_events``; the rows a hub writes in one batch are announced by one
  NOTIFY whose payload is their ids (never one NOTIFY per sample: samples travel as one coalesced
  notice a second). NOTIFY is delivered on commit, in commit order.
- The listener has its own connection, never pooled and never inside a transaction. After every
  (re)connect it catches up with a query over the recent rows, and a slow poll does the same as a
  safety net; ids already handled are skipped, so each notice is handled once.
- A probe query every heartbeat notices a dead connection in seconds (and the server's TCP
  keepalive frees a dead hub's session and locks); either connection reconnects by itself.
- Each hub heartbeats in ``hubs``; a hub silent for ``lost_after`` seconds has its devices marked
  offline (``hub_lost``) by a survivor, then its row deleted. Times are the database's clock.
- Singletons take a session advisory lock named by the schema and the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from monitor_server.cluster import NoticeHandler, RevivalHandler, TakeoverHandler
from monitor_server.cluster.notice import Notice
from monitor_server.store import Store

log = logging.getLogger("monitor_server.cluster")

BATCH = 400  # notices per NOTIFY: 400 ids of up to 19 digits stay under the 8,000-byte payload limit
OUTBOX_LIMIT = 100_000  # notices waiting for the database; past it the oldest are dropped (logged)
KEEP_NOTICES = 600.0  # seconds a notice row is kept (catch-up reaches back far less)
CATCH_UP_MARGIN = 10.0  # seconds the catch-up query reaches back past the last contact
PROBE_TIMEOUT = 3.0
STOP_TIMEOUT = 10.0  # seconds a stopping hub waits for its cancelled cluster tasks
WRITE_TIMEOUT = 6.0
_SERVER_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}
_INSERT = """
    WITH ins AS (
        INSERT INTO hub_events (hub_id, kind, device_id, body, at)
        SELECT $1, u.kind, u.device_id, u.body, extract(epoch from clock_timestamp())
        FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(kind, device_id, body, n)
        ORDER BY u.n
        RETURNING id)
    SELECT pg_notify($5, string_agg(id::text, ',' ORDER BY id)) FROM ins
"""
_RECENT = (
    "SELECT id, hub_id, kind, device_id, body, at FROM hub_events WHERE at >= $1 AND hub_id <> $2 ORDER BY id"
)
_BY_ID = (
    "SELECT id, hub_id, kind, device_id, body, at FROM hub_events"
    " WHERE id = ANY($1::bigint[]) AND hub_id <> $2 ORDER BY id"
)
_CLOCK = "SELECT extract(epoch from clock_timestamp())"
_CLEAN_UP = "DELETE FROM hub_events WHERE at < extract(epoch from clock_timestamp()) - $1"
_BEAT = (
    "INSERT INTO hubs (hub_id, address, started_at, heartbeat_at)"
    " VALUES ($1, $2, extract(epoch from clock_timestamp()), extract(epoch from clock_timestamp()))"
    " ON CONFLICT (hub_id) DO UPDATE SET heartbeat_at = extract(epoch from clock_timestamp())"
    " RETURNING (xmax = 0) AS inserted"
)
_LOST = (
    "SELECT hub_id FROM hubs WHERE heartbeat_at < extract(epoch from clock_timestamp()) - $1 AND hub_id <> $2"
)
_ALIVE = (
    "SELECT hub_id FROM hubs"
    " WHERE heartbeat_at >= extract(epoch from clock_timestamp()) - $1 AND hub_id <> $2"
)


class PgCluster:
    def __init__(
        self,
        dsn: str,
        store: Store,
        *,
        heartbeat: float = 2.0,
        lost_after: float = 10.0,
        poll: float = 5.0,
        address: str | None = None,
    ) -> None:
        self.hub_id: str | None = uuid.uuid4().hex[:16]
        self._dsn = dsn
        self._store = store
        self._heartbeat = heartbeat
        self._lost_after = lost_after
        self._poll = poll
        self._address = address
        self._schema = ""
        self._channel = ""
        self._writer: asyncpg.Connection | None = None
        self._listener: asyncpg.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._outbox: list[Notice] = []
        self._outbox_wake = asyncio.Event()
        self._incoming: asyncio.Queue[list[int] | None] = asyncio.Queue()
        self._relisten = asyncio.Event()
        self._seen: dict[int, float] = {}  # notice id -> its time, for the catch-up window
        self._since = 0.0  # database time of the last contact the catch-up reaches back from
        self._tasks: list[asyncio.Task[None]] = []
        self._on_notice: NoticeHandler | None = None
        self._on_takeover: TakeoverHandler | None = None
        self._on_revived: RevivalHandler | None = None

    @property
    def channel(self) -> str:
        return self._channel

    # Lifecycle

    async def start(
        self, on_notice: NoticeHandler, on_takeover: TakeoverHandler, on_revived: RevivalHandler
    ) -> None:
        self._on_notice, self._on_takeover, self._on_revived = on_notice, on_takeover, on_revived
        self._writer = await self._connect()
        self._schema = str(await self._writer.fetchval("SELECT current_schema()"))
        self._channel = f"monitor_{self._schema}"[:63]
        self._since = float(await self._writer.fetchval(_CLOCK))
        await self._beat()
        await self._listen()
        loop = asyncio.get_running_loop()
        for work, name in (
            (self._run_flusher(), "notices out"),
            (self._run_consumer(), "notices in"),
            (self._run_listener_guard(), "listener"),
            (self._run_heartbeat(), "heartbeat"),
        ):
            self._tasks.append(loop.create_task(work, name=f"cluster {name}"))
        log.info("hub %s joined the cluster on schema %s", self.hub_id, self._schema)

    async def stop(self) -> None:
        """Send what is queued, leave the ``hubs`` table (devices are marked by the hub first)."""
        with contextlib.suppress(Exception):
            await self._flush()
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a stop never hangs on a query that does not answer its cancel
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self._write("execute", "DELETE FROM hubs WHERE hub_id = $1", self.hub_id)
        for conn in (self._listener, self._writer):
            if conn is not None:
                await _close(conn)

    async def _connect(self) -> asyncpg.Connection:
        settings = {**_SERVER_SETTINGS, "application_name": f"monitor-hub {self.hub_id}"}
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn, server_settings=settings)
        return conn

    # Sending

    def tell(self, notice: Notice) -> None:
        if len(self._outbox) >= OUTBOX_LIMIT:
            del self._outbox[:BATCH]
            log.warning("cluster outbox full: %d notices to other hubs dropped", BATCH)
        self._outbox.append(notice)
        self._outbox_wake.set()

    async def _run_flusher(self) -> None:
        while True:
            await self._outbox_wake.wait()
            try:
                await self._flush()
            except Exception as exc:
                log.warning("notices to other hubs not sent yet (%s); retrying", exc)
                await asyncio.sleep(min(self._heartbeat, 1.0))

    async def _flush(self) -> None:
        self._outbox_wake.clear()
        while self._outbox:
            batch = self._outbox[:BATCH]
            kinds = [n.kind for n in batch]
            devices = [n.device_id for n in batch]
            bodies = [n.body_text() for n in batch]
            await self._write("execute", _INSERT, self.hub_id, kinds, devices, bodies, self._channel)
            del self._outbox[: len(batch)]

    # Receiving

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            conn.terminate()  # not listening: never left open (a stop may cancel this)
            raise
        conn.add_termination_listener(lambda _c: self._relisten.set())
        old, self._listener = self._listener, conn
        if old is not None:
            with contextlib.suppress(Exception):
                old.terminate()
        await self._catch_up()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            ids = [int(part) for part in payload.split(",") if part]
        except ValueError:
            log.warning("ignored a malformed notice payload on %s", self._channel)
            return
        self._incoming.put_nowait(ids)

    async def _run_consumer(self) -> None:
        while True:
            ids = await self._incoming.get()
            while not self._incoming.empty():
                more = self._incoming.get_nowait()
                ids = (ids or []) + (more or [])
            try:
                await self._receive(ids)
            except Exception as exc:
                log.warning("notices from other hubs not read (%s); the catch-up will", exc)
                self._relisten.set()

    async def _receive(self, ids: list[int] | None) -> None:
        fresh = [i for i in ids or () if i not in self._seen]
        if fresh:
            rows = await self._read("fetch", _BY_ID, fresh, self.hub_id)
            await self._dispatch(rows)

    async def _catch_up(self) -> None:
        """Handle every recent notice not handled yet (after a reconnect, and as the slow poll)."""
        now = float(await self._read("fetchval", _CLOCK))
        rows = await self._read("fetch", _RECENT, self._since - CATCH_UP_MARGIN, self.hub_id)
        await self._dispatch(rows)
        self._since = now
        horizon = now - 2 * CATCH_UP_MARGIN - self._poll
        self._seen = {i: at for i, at in self._seen.items() if at >= horizon}

    async def _dispatch(self, rows: list[asyncpg.Record]) -> None:
        assert self._on_notice is not None
        for row in rows:
            if row["id"] in self._seen:
                continue
            self._seen[row["id"]] = row["at"]
            notice = Notice(row["kind"], row["device_id"], _body(row["body"]), row["hub_id"], row["id"])
            try:
                await self._on_notice(notice)
            except Exception:
                log.exception("handling a %s notice from hub %s failed", notice.kind, notice.hub_id)

    async def _run_listener_guard(self) -> None:
        """Probe the listener every heartbeat; reconnect (and catch up) when it is gone; poll slowly."""
        next_poll = 0.0
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._relisten.wait(), self._heartbeat)
            try:
                if self._relisten.is_set() or self._listener is None or self._listener.is_closed():
                    self._relisten.clear()
                    log.warning("hub %s: listener connection lost; reconnecting", self.hub_id)
                    await self._listen()
                    log.info("hub %s: listening again, caught up", self.hub_id)
                elif loop.time() >= next_poll:
                    next_poll = loop.time() + self._poll
                    await self._catch_up()
                else:
                    await self._read("fetchval", "SELECT 1")
            except Exception as exc:
                log.warning("hub %s: listener not available (%s); retrying", self.hub_id, exc)
                self._relisten.set()
                await asyncio.sleep(min(self._heartbeat, 1.0))

    # Heartbeat and takeover

    async def _run_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._beat()
                await self._take_over_lost()
                async with self.exclusive("hub_events_cleanup") as mine:
                    if mine:
                        await self._write("execute", _CLEAN_UP, KEEP_NOTICES)
            except Exception as exc:
                log.warning("hub %s: heartbeat failed (%s); retrying", self.hub_id, exc)

    async def _beat(self) -> None:
        inserted = await self._write("fetchval", _BEAT, self.hub_id, self._address)
        if inserted and self._tasks and self._on_revived is not None:
            log.error(
                "hub %s: taken for dead by another hub (no heartbeat for %gs); claiming its devices again",
                self.hub_id,
                self._lost_after,
            )
            await self._on_revived()

    async def _take_over_lost(self) -> None:
        """Devices of hubs silent past ``lost_after`` go offline (``hub_lost``); then the hub's row goes."""
        lost = await self._write("fetch", _LOST, self._lost_after, self.hub_id)
        for row in lost:
            hub = row["hub_id"]
            at = float(await self._write("fetchval", _CLOCK))
            events = await self._store.mark_hub_lost(hub, at)
            await self._write("execute", "DELETE FROM hubs WHERE hub_id = $1", hub)
            log.warning(
                "hub %s silent for over %gs: %d of its devices offline (hub_lost)",
                hub,
                self._lost_after,
                len(events),
            )
            if events and self._on_takeover is not None:
                self._on_takeover(events)

    async def other_hubs(self) -> set[str]:
        rows = await self._write("fetch", _ALIVE, self._lost_after, self.hub_id)
        return {str(row["hub_id"]) for row in rows}

    # Singletons

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        key = f"{self._schema}:{name}"
        mine = bool(await self._write("fetchval", "SELECT pg_try_advisory_lock(hashtext($1))", key))
        try:
            yield mine
        finally:
            if mine:
                with contextlib.suppress(Exception):
                    await self._write("execute", "SELECT pg_advisory_unlock(hashtext($1))", key)

    # Connections

    async def _write(self, method: str, sql: str, *args: Any) -> Any:
        """Run ``sql`` with the connection's ``method`` on the writing connection (reconnecting once)."""
        async with self._write_lock:
            for attempt in (1, 2):
                if self._writer is None or self._writer.is_closed():
                    self._writer = await self._connect()
                try:
                    return await asyncio.wait_for(getattr(self._writer, method)(sql, *args), WRITE_TIMEOUT)
                except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, TimeoutError):
                    self._writer.terminate()
                    self._writer = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def _read(self, method: str, sql: str, *args: Any) -> Any:
        async with self._read_lock:
            if self._listener is None or self._listener.is_closed():
                raise ConnectionError("listener connection is closed")
            return await asyncio.wait_for(getattr(self._listener, method)(sql, *args), PROBE_TIMEOUT)


def _body(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


async def _close(conn: asyncpg.Connection) -> None:
    """Close politely within ``PROBE_TIMEOUT``, else drop the connection: never left open."""
    try:
        await asyncio.wait_for(conn.close(), PROBE_TIMEOUT)
    except Exception:
        conn.terminate()
