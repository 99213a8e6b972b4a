"""The store for several hubs (DESIGN §13): one PostgreSQL database through an asyncpg pool.

Behaves as ``SQLiteStore`` does (same records, errors and order). Ingest is one ``unnest``
insert per batch; every write is one transaction on a pooled connection. Table names are
unqualified: the URL's ``search_path`` chooses the schema.
"""

# ruff: noqa: S608 (SQL assembled from module constants and "$n" placeholders only)
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from monitor_server.store import pg_rollups as rollups
from monitor_server.store.base import Touch
from monitor_server.store.pg_alerts import PgAlerts
from monitor_server.store.pg_identity import PgIdentity
from monitor_server.store.pg_releases import PgReleases
from monitor_server.store.pg_schema import migrate
from monitor_server.store.records import (
    TIERS,
    Command,
    Device,
    PresenceEvent,
    RemovedDevice,
    Sample,
    Tier,
    tier_for,
    tier_step,
)
from monitor_server.store.rows import command_of, device_of, dumps, same_body, sample_of, tags_of
from protocol.codes import PresenceReason
from protocol.commands import FINAL_STATES, OPEN_STATES, CommandState, sources_of, transition
from protocol.errors import Conflict, IllegalTransition, NotFound

CLOSE_TIMEOUT = 10.0  # seconds ``close`` waits for connections in use before dropping them
_CMD_COLUMNS = (
    "id, device_id, command, args, state, created_at, delivered_at, acked_at, cancelled_at,"
    " success, message, result, idempotency_key, expires_at"
)
_DEVICE_COLUMNS = (
    "device_id, hostname, agent_version, platform, status, last_error, first_seen, last_seen,"
    " last_payload, online, connection, presence_reason, presence_since, display_name, tags, agent_tags,"
    " commands, hub_id"
)
_SAMPLE_COLUMNS = "device_id, ts, cpu, ram, disk, uptime_sec, status, extra"


def _states(states: frozenset[CommandState]) -> list[str]:
    """The values for ``state = ANY($n)``, from the state machine in ``protocol.commands``."""
    return sorted(state.value for state in states)


_OPEN = _states(OPEN_STATES)
_DELIVERABLE = _states(sources_of(CommandState.DELIVERED))
_ACKABLE = _states(sources_of(CommandState.ACKED))
_CANCELLABLE = _states(sources_of(CommandState.CANCELLED))
_EXPIRABLE = _states(sources_of(CommandState.EXPIRED))


class PostgresStore(PgIdentity, PgAlerts, PgReleases):
    """Every ``Store`` method on PostgreSQL; identity and alerts come from their mixins."""

    def __init__(self, url: str, min_size: int = 1, max_size: int = 4) -> None:
        self.url = url
        self._sizes = (min_size, max_size)
        self._opened = False

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.url, min_size=self._sizes[0], max_size=self._sizes[1])
        self._opened = True
        try:
            async with self._pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            try:  # waits for connections in use to come back: bounded, then they are dropped
                await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
            except TimeoutError:
                self._pool.terminate()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[PoolConnectionProxy]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    # devices and samples

    async def write_samples(
        self,
        samples: Sequence[Sample],
        seen_at: float,
        onlines: Sequence[PresenceEvent] = (),
        hub: str | None = None,
    ) -> None:
        if not samples:
            await self.set_presence_many(onlines, hub, claim=True)
            return
        latest: dict[str, Sample] = {}
        for sample in samples:
            if sample.device_id not in latest or sample.ts >= latest[sample.device_id].ts:
                latest[sample.device_id] = sample
        # Rows in one order (device, time) for every writer: two hubs storing one replayed batch, or
        # batches of the same devices, wait for each other instead of deadlocking.
        newest = [latest[d] for d in sorted(latest)]
        async with self._tx() as conn:
            await conn.execute(_INSERT_SAMPLES, *_columns([_sample_row(s) for s in _in_order(samples)], 8))
            await conn.execute(_SEEN, [s.device_id for s in newest], seen_at)
            await conn.execute(_UPDATE_LATEST, *_columns([_latest_row(s) for s in newest], 7))
            if onlines:
                await _store_presence(conn, onlines, hub, claim=True)

    async def touch_device(self, device_id: str, seen_at: float, **info: str | None) -> None:
        await self._pool.execute(_TOUCH, *_touch_row((device_id, seen_at, info)))

    async def touch_devices(self, touches: Sequence[Touch]) -> None:
        # Rows locked in device-id order, as every multi-row write takes them (no deadlock); a
        # stable sort keeps one device's touches in the order given.
        async with self._tx() as conn:
            await conn.executemany(_TOUCH, [_touch_row(t) for t in sorted(touches, key=lambda t: t[0])])

    async def list_devices(self) -> list[Device]:
        rows = await self._pool.fetch(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY device_id")
        return [device_of(r) for r in rows]

    async def device_tags(self) -> dict[str, frozenset[str]]:
        return dict(map(tags_of, await self._pool.fetch("SELECT device_id, tags, agent_tags FROM devices")))

    async def get_device(self, device_id: str) -> Device | None:
        row = await self._pool.fetchrow(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE device_id = $1", _key(device_id)
        )
        return None if row is None else device_of(row)

    async def query_samples(
        self, device_id: str, since: float | None, until: float | None, limit: int
    ) -> list[Sample]:
        rows = await self._pool.fetch(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE device_id = $1 AND ts >= $2 AND ts <= $3"
            " ORDER BY ts DESC LIMIT $4",
            _key(device_id),
            _lower(since),
            _upper(until),
            _limit(limit),
        )
        return [sample_of(r) for r in reversed(rows)]

    async def query_buckets(
        self, device_id: str, since: float | None, until: float | None, step: float, limit: int
    ) -> list[Sample]:
        """Aggregates per ``step`` seconds (the newest ``limit`` buckets, oldest first), as SQLite's."""
        tier = tier_for(step)
        if tier is None:
            args: tuple[Any, ...] = (step, _key(device_id), _lower(since), _upper(until), _limit(limit))
            rows = await self._pool.fetch(rollups.RAW_BUCKETS, *args)
        else:
            lowest = float("-inf") if since is None else since // tier.width * tier.width
            low, high = rollups.start_range(lowest, until)
            args = (tier_step(step), _key(device_id), low, high, _limit(limit))
            rows = await self._pool.fetch(rollups.TIER_BUCKETS[tier.name], *args)
        return [rollups.bucket(device_id, r) for r in reversed(rows)]

    async def roll_up(self, batch: int = 5_000) -> int:
        """Fold the samples stored since the last call into every tier, ``batch`` per transaction."""
        folded = 0
        while True:
            count = await self._roll_up_batch(batch)
            folded += count
            if count < batch:
                return folded

    async def _roll_up_batch(self, batch: int) -> int:
        """One batch. Ids are taken when rows are inserted, not when they commit, so the table lock
        waits for ingest in flight: no uncommitted sample can sit below the new watermark."""
        async with self._tx() as conn:
            await conn.execute("LOCK TABLE samples IN SHARE ROW EXCLUSIVE MODE")
            low = await conn.fetchval("SELECT watermark FROM rollup_state FOR UPDATE")
            count, high = await conn.fetchrow(rollups.NEXT_BATCH, low, batch)
            if count:
                await conn.execute(rollups.FOLD, low, high)
                await conn.execute("UPDATE rollup_state SET watermark = $1", high)
            return int(count)

    async def delete_rollups_before(self, tier: Tier, cutoff: float) -> int:
        status = await self._pool.execute(
            f"DELETE FROM {tier.table} WHERE start + {tier.width} <= $1::float8", cutoff
        )
        return _count(status)

    async def latest_sample(self, device_id: str) -> Sample | None:
        found = await self.query_samples(device_id, None, None, 1)
        return found[0] if found else None

    async def rename_device(self, device_id: str, name: str | None) -> Device | None:
        return await self._set_device(device_id, "display_name", name)

    async def set_device_tags(self, device_id: str, tags: Sequence[str]) -> Device | None:
        return await self._set_device(device_id, "tags", dumps(sorted(set(tags))))

    async def _set_device(self, device_id: str, column: str, value: str | None) -> Device | None:
        row = await self._pool.fetchrow(
            f"UPDATE devices SET {column} = $1 WHERE device_id = $2 RETURNING {_DEVICE_COLUMNS}",
            value,
            _key(device_id),
        )
        return None if row is None else device_of(row)

    async def delete_device(self, device_id: str) -> RemovedDevice | None:
        try:
            return await self._delete_device(_key(device_id))
        except _NothingToRemove:
            return None

    async def _delete_device(self, device_id: str) -> RemovedDevice:
        # samples first: its table lock before any row lock, the order ingest and roll_up take them
        tables = ("samples", "devices", "device_credentials", "presence_events", "commands")
        async with self._tx() as conn:
            counts = {}
            for table in tables:
                status = await conn.execute(f"DELETE FROM {table} WHERE device_id = $1", device_id)
                counts[table] = _count(status)
            if counts["devices"] == 0 and counts["device_credentials"] == 0:
                raise _NothingToRemove  # rolls back: commands queued for an unknown id stay
            for tier in TIERS:
                await conn.execute(f"DELETE FROM {tier.table} WHERE device_id = $1", device_id)
        return RemovedDevice(
            device_id,
            counts["samples"],
            counts["presence_events"],
            counts["commands"],
            counts["device_credentials"] > 0,
        )

    async def delete_samples_before(self, cutoff: float) -> int:
        """Delete raw samples older than ``cutoff`` that ``roll_up`` has already folded."""
        status = await self._pool.execute(
            "DELETE FROM samples WHERE ts < $1 AND id <= (SELECT watermark FROM rollup_state)", cutoff
        )
        return _count(status)

    # presence

    async def set_presence(
        self,
        device_id: str,
        online: bool,
        reason: str,
        connection: str | None,
        at: float,
        hub: str | None = None,
    ) -> PresenceEvent | None:
        """Store one transition; an offline from ``hub`` while another hub holds the session: None."""
        event = PresenceEvent(device_id, online, reason, connection, at)
        if not online:
            return next(iter(await self.set_offline_many([event], hub)), None)
        async with self._tx() as conn:
            await _store_presence(conn, [event], hub, claim=True)
        return event

    async def set_presence_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None, *, claim: bool = False
    ) -> None:
        """Store many transitions in one transaction (a restart marks thousands offline at once)."""
        if not events:
            return
        async with self._tx() as conn:
            await _store_presence(conn, events, hub, claim)

    async def set_offline_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None
    ) -> list[PresenceEvent]:
        if not events:
            return []
        async with self._tx() as conn:
            kept = list(events)
            if hub is not None:
                rows = await conn.fetch(_HOLDERS, sorted({e.device_id for e in events}))
                elsewhere = {r[0] for r in rows if r[1] not in (None, hub)}
                kept = [e for e in events if e.device_id not in elsewhere]
            await _store_presence(conn, kept, hub, claim=True)
        return kept

    async def mark_hub_lost(self, hub: str, at: float) -> list[PresenceEvent]:
        """Every device online through ``hub`` goes offline (``hub_lost``), in one transaction."""
        async with self._tx() as conn:
            rows = await conn.fetch(_HUB_LOST, hub, PresenceReason.HUB_LOST.value, at)
            events = sorted(
                (PresenceEvent(r[0], False, PresenceReason.HUB_LOST, r[1], at) for r in rows),
                key=lambda e: e.device_id,
            )
            await _record_presence(conn, events)
        return events

    async def presence_events(self, device_id: str, limit: int) -> list[PresenceEvent]:
        rows = await self._pool.fetch(
            "SELECT device_id, online, reason, connection, at FROM presence_events"
            " WHERE device_id = $1 ORDER BY id DESC LIMIT $2",
            _key(device_id),
            _limit(limit),
        )
        return [PresenceEvent(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # commands

    async def create_command(
        self,
        device_id: str,
        command: str,
        args: dict[str, Any] | None,
        at: float,
        idempotency_key: str | None = None,
        expires_at: float | None = None,
    ) -> tuple[Command, bool]:
        """A new pending command; a known key returns its command, Conflict if the body differs.

        The insert comes first (``ON CONFLICT DO NOTHING``), so two hubs sending one key at once
        store one command and both answer with it.
        """
        values = (
            device_id,
            command,
            dumps(args),
            CommandState.PENDING.value,
            at,
            idempotency_key,
            expires_at,
        )
        async with self._tx() as conn:
            new_id = await conn.fetchval(_INSERT_COMMAND, *values)
            if new_id is None:
                existing = await _one_command(conn, device_id, None, idempotency_key)
                assert existing is not None, "the key's command conflicted, so it exists"
                if not same_body(existing, command, args):
                    raise Conflict(
                        f"Idempotency-Key {idempotency_key!r} was already used for command"
                        f" {existing.id} with a different body; use a new key for a new command"
                    )
                return existing, False
        created = Command(
            new_id,
            device_id,
            command,
            args,
            CommandState.PENDING,
            at,
            idempotency_key=idempotency_key,
            expires_at=expires_at,
        )
        return created, True

    async def get_command(self, device_id: str, command_id: int) -> Command | None:
        async with self._pool.acquire() as conn:
            return await _one_command(conn, _key(device_id), command_id)

    async def commands_with_key(self, idempotency_key: str) -> list[Command]:
        rows = await self._pool.fetch(
            f"SELECT {_CMD_COLUMNS} FROM commands WHERE idempotency_key = $1 ORDER BY device_id",
            _key(idempotency_key),
        )
        return [command_of(r) for r in rows]

    async def list_commands(self, device_id: str, limit: int) -> list[Command]:
        rows = await self._pool.fetch(
            f"SELECT {_CMD_COLUMNS} FROM commands WHERE device_id = $1 ORDER BY id DESC LIMIT $2",
            _key(device_id),
            _limit(limit),
        )
        return [command_of(r) for r in rows]

    async def open_commands(
        self, device_id: str, after_id: int = 0, limit: int = -1, at: float | None = None
    ) -> list[Command]:
        """Open commands after ``after_id``, oldest first; with ``at``, none expired by then."""
        rows = await self._pool.fetch(
            f"SELECT {_CMD_COLUMNS} FROM commands WHERE device_id = $1 AND id > $2"
            " AND state = ANY($3::text[]) AND (expires_at IS NULL OR expires_at > $4)"
            " ORDER BY id LIMIT $5",
            _key(device_id),
            after_id,
            _OPEN,
            _lower(at),
            _limit(limit),
        )
        return [command_of(r) for r in rows]

    async def expire_commands(self, at: float, device_id: str | None = None) -> list[Command]:
        """Mark ``expired`` the open commands (of one device, or all) whose expiry is at or before ``at``.

        Returns exactly the rows changed, by id; a call that finds nothing due writes nothing.
        """
        where = "state = ANY($1::text[]) AND expires_at <= $2 AND ($3::text IS NULL OR device_id = $3)"
        params = (_EXPIRABLE, at, None if device_id is None else _key(device_id))
        if await self._pool.fetchval(f"SELECT 1 FROM commands WHERE {where} LIMIT 1", *params) is None:
            return []
        rows = await self._pool.fetch(
            f"UPDATE commands SET state = $4 WHERE {where} RETURNING {_CMD_COLUMNS}",
            *params,
            CommandState.EXPIRED.value,
        )
        return sorted((command_of(r) for r in rows), key=lambda command: command.id)

    async def mark_delivered(self, command_ids: Sequence[int], at: float) -> list[Command]:
        """Move pending commands to delivered; return only those that changed state, by id."""
        if not command_ids:
            return []
        rows = await self._pool.fetch(
            "UPDATE commands SET state = $1, delivered_at = $2"
            f" WHERE id = ANY($3::bigint[]) AND state = ANY($4::text[]) RETURNING {_CMD_COLUMNS}",
            CommandState.DELIVERED.value,
            at,
            list(command_ids),
            _DELIVERABLE,
        )
        return sorted((command_of(r) for r in rows), key=lambda command: command.id)

    async def ack_command(
        self,
        device_id: str,
        command_id: int,
        success: bool,
        message: str,
        result: dict[str, Any] | None,
        at: float,
    ) -> tuple[Command, bool]:
        """Store the first acknowledgement; later ones (or one after cancel or expiry) change nothing."""
        values = (CommandState.ACKED.value, at, success, message, dumps(result))
        async with self._tx() as conn:
            row = await conn.fetchrow(_ACK, *values, _key(device_id), command_id, _ACKABLE)
            if row is not None:
                return command_of(row), True
            current = await _one_command(conn, _key(device_id), command_id)
        if current is None:
            raise NotFound(f"command {command_id} does not exist for device {device_id!r}")
        assert current.state in FINAL_STATES, f"open command {command_id} was not acked"
        return current, False

    async def cancel_command(self, device_id: str, command_id: int, at: float) -> Command:
        """Cancel an open command; cancelling a cancelled one again returns it, any other is a Conflict.

        The row is locked while deciding, so an ack arriving at once waits and then finds it cancelled.
        """
        async with self._tx() as conn:
            current = await _one_command(conn, _key(device_id), command_id, lock=True)
            if current is None:
                raise NotFound(f"command {command_id} does not exist for device {device_id!r}")
            if current.state is CommandState.CANCELLED:
                return current
            try:
                target = transition(current.state, CommandState.CANCELLED)
            except IllegalTransition as exc:
                raise Conflict(
                    f"command {current.id} is already {current.state}; it cannot be cancelled"
                ) from exc
            row = await conn.fetchrow(
                f"UPDATE commands SET state = $1, cancelled_at = $2 WHERE id = $3 RETURNING {_CMD_COLUMNS}",
                target.value,
                at,
                command_id,
            )
        return command_of(row)


class _NothingToRemove(Exception):
    """``delete_device`` found neither a device row nor a credential: roll back, answer None."""


_INSERT_SAMPLES = (
    f"INSERT INTO samples ({_SAMPLE_COLUMNS}) SELECT * FROM unnest($1::text[], $2::float8[],"
    " $3::float8[], $4::float8[], $5::float8[], $6::int8[], $7::text[], $8::text[])"
    " ON CONFLICT (device_id, ts) DO NOTHING"
)
_SEEN = (
    "INSERT INTO devices (device_id, first_seen, last_seen) SELECT d, $2, $2 FROM unnest($1::text[]) AS d"
    " ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen"
)
_UPDATE_LATEST = (
    "UPDATE devices AS d SET last_sample_ts = u.ts, last_payload = u.payload,"
    " hostname = COALESCE(u.hostname, d.hostname),"
    " agent_version = COALESCE(u.agent_version, d.agent_version),"
    " status = COALESCE(u.status, d.status), last_error = COALESCE(u.last_error, d.last_error)"
    " FROM unnest($1::text[], $2::float8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])"
    " AS u(device_id, ts, payload, hostname, agent_version, status, last_error)"
    " WHERE d.device_id = u.device_id AND (d.last_sample_ts IS NULL OR d.last_sample_ts <= u.ts)"
)
_TOUCH = (
    "INSERT INTO devices (device_id, first_seen, last_seen, hostname, agent_version, platform,"
    " agent_tags, commands) VALUES ($1, $2, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id) DO UPDATE"
    " SET last_seen = excluded.last_seen, hostname = COALESCE($3, devices.hostname),"
    " agent_version = COALESCE($4, devices.agent_version), platform = COALESCE($5, devices.platform),"
    " agent_tags = COALESCE($6, devices.agent_tags), commands = COALESCE($7, devices.commands)"
)
_TOUCH_FIELDS = ("hostname", "agent_version", "platform", "agent_tags", "commands")


def _touch_row(touch: Touch) -> tuple[Any, ...]:
    device_id, seen_at, info = touch
    return (device_id, seen_at, *(info.get(f) for f in _TOUCH_FIELDS))


# New devices are first seen at their first event; the rest is the device's last event. Offline
# releases the holding hub; online makes ``$8`` the holder when ``$7``, otherwise it stays.
_SET_PRESENCE = (
    "INSERT INTO devices AS d (device_id, first_seen, online, connection, presence_reason,"
    " presence_since, hub_id) SELECT device_id, first_at, online, connection, reason, at,"
    " CASE WHEN online AND $7 THEN $8 END FROM unnest($1::text[], $2::float8[], $3::bool[],"
    " $4::text[], $5::text[], $6::float8[]) AS u(device_id, first_at, online, reason, connection, at)"
    " ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, connection = excluded.connection,"
    " presence_reason = excluded.presence_reason, presence_since = excluded.presence_since,"
    " hub_id = CASE WHEN NOT excluded.online THEN NULL WHEN $7 THEN $8 ELSE d.hub_id END"
)
_RECORD_PRESENCE = (
    "INSERT INTO presence_events (device_id, online, reason, connection, at)"
    " SELECT device_id, online, reason, connection, at FROM unnest($1::text[], $2::bool[], $3::text[],"
    " $4::text[], $5::float8[]) WITH ORDINALITY AS u(device_id, online, reason, connection, at, i) ORDER BY i"
)
# The devices' holding hubs, their rows locked in id order (as every multi-row write takes them).
_HOLDERS = (
    "SELECT device_id, hub_id FROM devices WHERE device_id = ANY($1::text[]) ORDER BY device_id FOR UPDATE"
)
_HUB_LOST = (
    "UPDATE devices SET online = FALSE, presence_reason = $2, presence_since = $3, hub_id = NULL"
    " WHERE device_id IN (SELECT device_id FROM devices WHERE online AND hub_id = $1"
    " ORDER BY device_id FOR UPDATE) AND online AND hub_id = $1 RETURNING device_id, connection"
)
_INSERT_COMMAND = (
    "INSERT INTO commands (device_id, command, args, state, created_at, idempotency_key, expires_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, idempotency_key) DO NOTHING RETURNING id"
)
_ACK = (
    "UPDATE commands SET state = $1, acked_at = $2, success = $3, message = $4, result = $5"
    f" WHERE device_id = $6 AND id = $7 AND state = ANY($8::text[]) RETURNING {_CMD_COLUMNS}"
)


async def _store_presence(
    conn: PoolConnectionProxy, events: Sequence[PresenceEvent], hub: str | None = None, claim: bool = False
) -> None:
    """Set each device's presence (its last event wins) and record every event.

    One upsert over the devices in id order: rows are locked in the order every multi-row write
    takes them, so concurrent writers wait for each other but never deadlock.
    """
    first: dict[str, float] = {}
    last: dict[str, PresenceEvent] = {}
    for e in events:
        first.setdefault(e.device_id, e.at)
        last[e.device_id] = e
    rows = [
        (d, first[d], last[d].online, last[d].reason, last[d].connection, last[d].at) for d in sorted(last)
    ]
    await conn.execute(_SET_PRESENCE, *_columns(rows, 6), claim, hub)
    await _record_presence(conn, events)


async def _record_presence(conn: PoolConnectionProxy, events: Sequence[PresenceEvent]) -> None:
    if events:
        await conn.execute(_RECORD_PRESENCE, *_presence_columns(events))


def _presence_columns(events: Sequence[PresenceEvent]) -> list[list[Any]]:
    return _columns([(e.device_id, e.online, e.reason, e.connection, e.at) for e in events], 5)


async def _one_command(
    conn: PoolConnectionProxy,
    device_id: str,
    command_id: int | None,
    idempotency_key: str | None = None,
    lock: bool = False,
) -> Command | None:
    """A device's command by id, or by Idempotency-Key; ``lock``: held until the transaction ends."""
    column, value = ("id", command_id) if command_id is not None else ("idempotency_key", idempotency_key)
    row = await conn.fetchrow(
        f"SELECT {_CMD_COLUMNS} FROM commands WHERE device_id = $1 AND {column} = $2"
        + (" FOR UPDATE" if lock else ""),
        device_id,
        value,
    )
    return None if row is None else command_of(row)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column, the arrays ``unnest`` takes."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _count(status: str) -> int:
    """Rows a command touched, from its status tag (``DELETE 3``)."""
    return int(status.rsplit(" ", 1)[-1])


def _key(text: str) -> str:
    """A lookup key PostgreSQL can hold: text never contains NUL, so such a key matches no row."""
    return text.replace("\x00", "\ufffe") if "\x00" in text else text


def _limit(limit: int) -> int | None:
    """SQLite's ``LIMIT -1`` (everything) is PostgreSQL's ``LIMIT NULL``."""
    return None if limit < 0 else limit


def _lower(since: float | None) -> float:
    return float("-inf") if since is None else since


def _upper(until: float | None) -> float:
    return float("inf") if until is None else until


def _text(value: Any) -> str | None:
    """A value for a text column, as SQLite's TEXT affinity stores it."""
    return None if value is None else str(value)


def _in_order(samples: Sequence[Sample]) -> list[Sample]:
    """By device, then time (stable: of a replayed duplicate, the first is the one stored)."""
    return sorted(samples, key=lambda s: (s.device_id, s.ts))


def _sample_row(s: Sample) -> tuple[Any, ...]:
    return (s.device_id, s.ts, s.cpu, s.ram, s.disk, s.uptime_sec, s.status, dumps(s.extra or None))


def _latest_row(s: Sample) -> tuple[Any, ...]:
    payload = {"device_id": s.device_id, **s.to_json()}
    extra = s.extra
    return (
        s.device_id,
        s.ts,
        dumps(payload),
        _text(extra.get("hostname")),
        _text(extra.get("agent_version")),
        s.status,
        _text(extra.get("last_error")),
    )
