"""The default store: one SQLite file in WAL mode.

Every write is one explicit transaction, one at a time across the connections (the write lock),
so interleaved coroutines never share a half-finished transaction. The frequent writes run on a
thread of their own, a transaction per hand-off (``sqlite_thread.py``); a command's insert and its
device's read run on the event loop's thread when the lock is free; the rest drive aiosqlite
statement by statement; the roll-up has a connection of its own. Samples arrive in batches (see
``ingest.py``): one transaction for many rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from monitor_server.store.base import Touch
from monitor_server.store.records import (
    ROLLUP_FIELDS,
    TIERS,
    ApiKey,
    AuditEvent,
    Command,
    Device,
    DeviceCredential,
    EnrollmentToken,
    PresenceEvent,
    RemovedDevice,
    Sample,
    Tier,
    User,
    UserSession,
    tier_for,
    tier_step,
)
from monitor_server.store.rows import command_of, device_of, dumps, loads, same_body, sample_of, tags_of
from monitor_server.store.schema import MIGRATIONS
from monitor_server.store.sqlite_alerts import SQLiteAlerts
from monitor_server.store.sqlite_checkpoint import NO_AUTOCHECKPOINT, Checkpointer
from monitor_server.store.sqlite_releases import SQLiteReleases
from monitor_server.store.sqlite_thread import Body, SQLiteThread, connect, in_transaction
from protocol.codes import PresenceReason
from protocol.commands import FINAL_STATES, OPEN_STATES, CommandState, sources_of, transition
from protocol.errors import Conflict, IllegalTransition, NotFound, Unauthenticated
from protocol.identity import Role

# No connection checkpoints when it commits (the checkpoint would run inside the commit, holding
# the write lock): ``Checkpointer`` copies the WAL into the database on a connection of its own,
# at the 4,000 pages the automatic checkpoint had (``store/sqlite_checkpoint.py``).
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    NO_AUTOCHECKPOINT,
)
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
_INSERT_SAMPLES = f"INSERT OR IGNORE INTO samples ({_SAMPLE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"
T = TypeVar("T")


def _state_in(states: frozenset[CommandState]) -> tuple[str, tuple[str, ...]]:
    """``state IN (?, ...)`` and its parameters, in a fixed order so the statement text is reused."""
    values = tuple(sorted(state.value for state in states))
    return f"state IN ({', '.join('?' * len(values))})", values


# Every state the SQL mentions comes from the state machine in ``protocol.commands``.
_OPEN_SQL, _OPEN_ARGS = _state_in(OPEN_STATES)
_DELIVERABLE_SQL, _DELIVERABLE_ARGS = _state_in(sources_of(CommandState.DELIVERED))
_ACKABLE_SQL, _ACKABLE_ARGS = _state_in(sources_of(CommandState.ACKED))
_CANCELLABLE_SQL, _CANCELLABLE_ARGS = _state_in(sources_of(CommandState.CANCELLED))
_EXPIRABLE_SQL, _EXPIRABLE_ARGS = _state_in(sources_of(CommandState.EXPIRED))


# The samples are summed outside any write transaction (the roll-up's own connection, in a read
# transaction); the batch still bounds how long each fold behind it runs. Before that, every write
# waited for the batch being summed. In one process on the bench machine (10,000 devices, a pass
# of 60,000 samples), batches of 5,000 and the whole fold in one transaction held the writer
# 0.2-0.35 s per batch and 1.4-2.7 s for the fold; 1,000 and 500 held it 50-100 ms each, 500 and
# 250 20-60 ms, with the pass no longer in all. Too short, and the pass's many transactions delay
# more of the commits they interleave with (the push scenario's median rose by 2 ms with 500 and
# 250).
ROLL_BATCH = 1_000  # samples summed per transaction
# The roll-up's thread runs this much nicer than the event loop (``lower_priority``). With the hub
# on one core, its summing (about a sixth of the core at 10,000 agents sending every 5 s) took
# turns with the loop, and a pushed command waited for those turns: the push scenario's p50
# 18-21 ms and p99 274-322 ms before, 10 ms and 116 ms with the roll-up at 19 (interleaved runs).
# The sample writes' thread stays at the loop's priority: niced too, the loop's commands and
# acks waited for its commits (p50 19-21 ms, p99 172-229 ms).
ROLLUP_NICE = 19


class SQLiteStore(SQLiteAlerts, SQLiteReleases):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # The frequent writes (samples, presence, commands, audit), a transaction per hand-off.
        self._writes = SQLiteThread(path, _PRAGMAS, "sqlite-writes")
        # The roll-up's: its sums in its own temporary table, read and summed with no write lock.
        self._roller = SQLiteThread(path, _PRAGMAS, "sqlite-rollup", nice=ROLLUP_NICE)
        # Used on the event loop's own thread, for what a pushed command waits for: the device's
        # row, and the command's insert when the write lock is free (see ``_write``).
        self._inline: sqlite3.Connection | None = None
        self._checkpointer = Checkpointer(path, _PRAGMAS)  # the WAL copied in, outside the lock
        # One write transaction at a time across the connections (SQLite's own lock would make
        # a writer poll for it); taken in the threads, never held across an event-loop wake-up.
        self._write_lock = threading.Lock()
        self._rolling = asyncio.Lock()  # one roll_up at a time: its sums span transactions

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        await self._migrate(self._writer)
        self._reader = await self._connect()
        await self._writes.open()
        await self._roller.open()
        await self._roller.run(_create_batch_table)
        self._inline = connect(self.path, _PRAGMAS)
        await self._checkpointer.open()

    async def close(self) -> None:
        await self._checkpointer.stop()
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        await self._roller.close()
        await self._writes.close()
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None
        await self._checkpointer.close()  # after every connection: it releases the ``-shm`` file

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
        return conn

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction on the writer, a statement per hand-off (the less frequent writes)."""
        db = self._writer
        assert db is not None, "store is not open"
        async with self._exclusive():
            await _begin(db)
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """The write lock for a transaction driven from the event loop. It is taken on the frequent
        writes' thread, in turn with the transactions queued there, which wait until it is back."""
        taken: list[bool] = []
        try:
            await self._writes.run(lambda _: taken.append(self._write_lock.acquire()))
        except asyncio.CancelledError:
            if taken:  # the hand-off still finished (see SQLiteThread): the lock is ours
                self._write_lock.release()
            raise
        try:
            yield
        finally:
            self._write_lock.release()

    async def _write(self, body: Body[T], on: SQLiteThread | None = None, inline: bool = False) -> T:
        """``body`` in one write transaction on the frequent writes' connection (or ``on``), in one
        hand-off to its thread. The write lock is taken and released in that thread, so a
        transaction holds it for its SQLite work alone, however late the event loop is.

        ``inline`` (a short transaction someone waits for): when the lock is free, ``body`` runs
        at once on the event loop's thread, with no hand-off to wait a loop turn for; else as
        above."""
        if inline and self._write_lock.acquire(blocking=False):
            try:
                assert self._inline is not None, "store is not open"
                return in_transaction(self._inline, body, contextlib.nullcontext(), "BEGIN IMMEDIATE")
            finally:
                self._write_lock.release()
        return await (on or self._writes).write(body, self._write_lock)

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        assert self._reader is not None, "store is not open"
        async with self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    # devices and samples

    async def write_samples(
        self,
        samples: Sequence[Sample],
        seen_at: float,
        onlines: Sequence[PresenceEvent] = (),
        hub: str | None = None,
    ) -> None:
        latest: dict[str, Sample] = {}
        for sample in samples:
            if sample.device_id not in latest or sample.ts >= latest[sample.device_id].ts:
                latest[sample.device_id] = sample
        rows = [_sample_row(s) for s in samples]
        latest_rows = [_latest_row(s, seen_at) for s in latest.values()]

        def store(db: sqlite3.Connection) -> None:
            db.executemany(_INSERT_SAMPLES, rows)
            db.executemany(_UPSERT_LATEST, latest_rows)
            if onlines:
                _add_devices(db, onlines)
                _store_presence(db, onlines, hub, claim=True)

        await self._write(store)

    async def touch_device(self, device_id: str, seen_at: float, **info: str | None) -> None:
        await self.touch_devices([(device_id, seen_at, info)])

    async def touch_devices(self, touches: Sequence[Touch]) -> None:
        rows = [_touch_row(t) for t in touches]
        await self._write(lambda db: db.executemany(_TOUCH, rows))

    async def list_devices(self) -> list[Device]:
        rows = await self._fetch(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY device_id")
        return [device_of(r) for r in rows]

    async def device_tags(self) -> dict[str, frozenset[str]]:
        return dict(map(tags_of, await self._fetch("SELECT device_id, tags, agent_tags FROM devices")))

    async def get_device(self, device_id: str) -> Device | None:
        """One row by its key, read on the event loop's thread (a WAL reader never waits)."""
        assert self._inline is not None, "store is not open"
        row = self._inline.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE device_id = ?", (device_id,)
        ).fetchone()
        return device_of(row) if row is not None else None

    async def query_samples(
        self, device_id: str, since: float | None, until: float | None, limit: int
    ) -> list[Sample]:
        rows = await self._fetch(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE device_id = ? AND ts >= ? AND ts <= ?"
            " ORDER BY ts DESC LIMIT ?",
            (
                device_id,
                since if since is not None else float("-inf"),
                until if until is not None else float("inf"),
                limit,
            ),
        )
        return [sample_of(r) for r in reversed(rows)]

    async def query_buckets(
        self, device_id: str, since: float | None, until: float | None, step: float, limit: int
    ) -> list[Sample]:
        """Aggregates per ``step`` seconds (the newest ``limit`` buckets, oldest first).

        A step of a minute or more reads the coarsest tier whose rows fit in a bucket (the step
        is then a whole number of them, see ``tier_step``), plus the samples not folded yet, so
        the answer is exact and current; a shorter step reads the raw samples.
        """
        tier = tier_for(step)
        if tier is None:
            rows = await self._fetch(
                _RAW_BUCKETS,
                (step, device_id, _lower(since), _upper(until), limit),
            )
        else:
            lowest = float("-inf") if since is None else since // tier.width * tier.width
            rows = await self._fetch(
                _TIER_BUCKETS[tier.name],
                (tier_step(step), device_id, lowest, _upper(until), limit),
            )
        return [_bucket(device_id, r) for r in reversed(rows)]

    async def roll_up(self, batch: int = ROLL_BATCH) -> int:
        """Fold the samples stored since the last call into every tier; how many were folded.

        Samples are taken by id (the order they were stored, so late arrivals are not missed),
        ``batch`` per read transaction on the roll-up's own connection, so no write waits for
        the summing. Each batch is summed per device and minute into that connection's temporary
        table; the tiers are updated from it once it holds ``FOLD_ROWS`` (device, minute) rows or
        the samples run out. A fleet of many devices sending one sample at a time has about one
        sample per device in a batch: folding each batch updated three tier rows per sample,
        folding the sums of many batches updates them once per device and minute. The sums go into
        the tiers ``FOLD_CHUNK`` rows per transaction (``_fold_held``), so a command or a sample
        waits for one chunk, not for the whole fleet's.
        """
        async with self._rolling:
            low, cut_high, cut_after = await self._roller.read(_start_pass)
            if cut_high is not None and cut_after is not None:  # a pass cut short: finish it first
                await self._roller.read(lambda db: db.execute(_FILL_BATCH_AFTER, (low, cut_high, cut_after)))
                await self._fold_held(cut_high, cut_after)
                low = cut_high
            return await self._fold_from(low, batch)

    async def _fold_from(self, low: int, batch: int) -> int:
        folded, held = 0, 0
        while True:
            # A read transaction: the sums go to the roller's temporary table, no write lock taken.
            count, high, held = await self._roller.read(functools.partial(_sum_batch, low=low, batch=batch))
            if count:
                low, folded = high, folded + count
            if held and (count < batch or held >= FOLD_ROWS):
                await self._fold_held(low, "")
                held = 0
            if count < batch:
                return folded

    async def _fold_held(self, high: int, after: str) -> None:
        """Fold the held sums of the devices after ``after`` into the tiers, ``FOLD_CHUNK`` rows (a
        range of devices) per transaction, each recording how far the pass got; the last one
        moves the watermark to ``high``."""
        upto: str | None = after
        while upto is not None:
            upto = await self._write(functools.partial(_fold_chunk, high=high, after=upto), on=self._roller)

    async def delete_rollups_before(self, tier: Tier, cutoff: float) -> int:
        """Delete the tier's rows whose span ends at or before ``cutoff``; how many."""
        async with self._tx() as db:
            cur = await db.execute(f"DELETE FROM {tier.table} WHERE start + ? <= ?", (tier.width, cutoff))
            return cur.rowcount

    async def latest_sample(self, device_id: str) -> Sample | None:
        found = await self.query_samples(device_id, None, None, 1)
        return found[0] if found else None

    async def rename_device(self, device_id: str, name: str | None) -> Device | None:
        return await self._set_device(device_id, "display_name", name)

    async def set_device_tags(self, device_id: str, tags: Sequence[str]) -> Device | None:
        return await self._set_device(device_id, "tags", dumps(sorted(set(tags))))

    async def _set_device(self, device_id: str, column: str, value: str | None) -> Device | None:
        async with (
            self._tx() as db,
            db.execute(
                f"UPDATE devices SET {column} = ? WHERE device_id = ? RETURNING {_DEVICE_COLUMNS}",
                (value, device_id),
            ) as cur,
        ):
            row = await cur.fetchone()
        return device_of(row) if row is not None else None

    async def delete_device(self, device_id: str) -> RemovedDevice | None:
        try:
            return await self._delete_device(device_id)
        except _NothingToRemove:
            return None

    async def _delete_device(self, device_id: str) -> RemovedDevice:
        tables = ("devices", "device_credentials", "samples", "presence_events", "commands")
        # Not during a roll-up pass: its sums and ``pass_high`` were taken from the samples before
        # the clamp below, which could hand ids under them to new samples.
        async with self._rolling, self._tx() as db:
            counts = []
            for table in tables:
                cur = await db.execute(f"DELETE FROM {table} WHERE device_id = ?", (device_id,))
                counts.append(cur.rowcount)
            if counts[0] == 0 and counts[1] == 0:
                raise _NothingToRemove  # rolls back: commands queued for an unknown id stay
            for tier in TIERS:
                await db.execute(f"DELETE FROM {tier.table} WHERE device_id = ?", (device_id,))
            await db.execute(_CLAMP_WATERMARK)
        return RemovedDevice(device_id, counts[2], counts[3], counts[4], counts[1] > 0)

    async def delete_samples_before(self, cutoff: float) -> int:
        """Delete raw samples older than ``cutoff`` that ``roll_up`` has already folded."""
        async with self._tx() as db:
            cur = await db.execute(
                "DELETE FROM samples WHERE ts < ? AND id <= (SELECT watermark FROM rollup_state)", (cutoff,)
            )
            await db.execute(_CLAMP_WATERMARK)
            return cur.rowcount

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
        await self.set_presence_many([event], hub, claim=True)
        return event

    async def set_presence_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None, *, claim: bool = False
    ) -> None:
        """Store many transitions in one transaction (a restart marks thousands offline at once)."""

        def store(db: sqlite3.Connection) -> None:
            _add_devices(db, events)
            _store_presence(db, events, hub, claim)

        await self._write(store)

    async def set_offline_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None
    ) -> list[PresenceEvent]:
        def store(db: sqlite3.Connection) -> list[PresenceEvent]:
            _add_devices(db, events)
            kept = list(events) if hub is None else _not_held_elsewhere(db, events, hub)
            _store_presence(db, kept, hub, claim=True)
            return kept

        return await self._write(store)

    async def mark_hub_lost(self, hub: str, at: float) -> list[PresenceEvent]:
        """Every device online through ``hub`` goes offline (``hub_lost``), in one transaction."""

        def store(db: sqlite3.Connection) -> list[PresenceEvent]:
            rows = db.execute(
                "SELECT device_id, connection FROM devices WHERE online = 1 AND hub_id = ?"
                " ORDER BY device_id",
                (hub,),
            ).fetchall()
            events = [PresenceEvent(r[0], False, PresenceReason.HUB_LOST, r[1], at) for r in rows]
            _store_presence(db, events)
            return events

        return await self._write(store)

    async def presence_events(self, device_id: str, limit: int) -> list[PresenceEvent]:
        rows = await self._fetch(
            "SELECT device_id, online, reason, connection, at FROM presence_events"
            " WHERE device_id = ? ORDER BY id DESC LIMIT ?",
            (device_id, limit),
        )
        return [PresenceEvent(r[0], bool(r[1]), r[2], r[3], r[4]) for r in rows]

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
        body = dumps(args)

        def store(db: sqlite3.Connection) -> tuple[Command, bool]:
            if idempotency_key is not None:
                existing = _one_command(
                    db, "device_id = ? AND idempotency_key = ?", (device_id, idempotency_key)
                )
                if existing is not None:
                    if not same_body(existing, command, args):
                        raise Conflict(
                            f"Idempotency-Key {idempotency_key!r} was already used for command"
                            f" {existing.id} with a different body; use a new key for a new command"
                        )
                    return existing, False
            cur = db.execute(
                "INSERT INTO commands"
                " (device_id, command, args, state, created_at, idempotency_key, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (device_id, command, body, CommandState.PENDING.value, at, idempotency_key, expires_at),
            )
            assert cur.lastrowid is not None
            created = Command(
                cur.lastrowid,
                device_id,
                command,
                args,
                CommandState.PENDING,
                at,
                idempotency_key=idempotency_key,
                expires_at=expires_at,
            )
            return created, True

        return await self._write(store, inline=True)

    async def get_command(self, device_id: str, command_id: int) -> Command | None:
        rows = await self._fetch(
            f"SELECT {_CMD_COLUMNS} FROM commands WHERE device_id = ? AND id = ?",
            (device_id, command_id),
        )
        return command_of(rows[0]) if rows else None

    async def commands_with_key(self, idempotency_key: str) -> list[Command]:
        rows = await self._fetch(
            f"SELECT {_CMD_COLUMNS} FROM commands WHERE idempotency_key = ? ORDER BY device_id",
            (idempotency_key,),
        )
        return [command_of(r) for r in rows]

    async def list_commands(self, device_id: str, limit: int) -> list[Command]:
        rows = await self._fetch(
            f"SELECT {_CMD_COLUMNS} FROM commands WHERE device_id = ? ORDER BY id DESC LIMIT ?",
            (device_id, limit),
        )
        return [command_of(r) for r in rows]

    async def open_commands(
        self, device_id: str, after_id: int = 0, limit: int = -1, at: float | None = None
    ) -> list[Command]:
        """Open commands after ``after_id``, oldest first; with ``at``, none expired by then."""
        rows = await self._fetch(
            f"SELECT {_CMD_COLUMNS} FROM commands WHERE device_id = ? AND id > ? AND {_OPEN_SQL}"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY id LIMIT ?",
            (device_id, after_id, *_OPEN_ARGS, float("-inf") if at is None else at, limit),
        )
        return [command_of(r) for r in rows]

    async def expire_commands(self, at: float, device_id: str | None = None) -> list[Command]:
        """Mark ``expired`` the open commands (of one device, or all) whose expiry is at or before ``at``.

        Returns exactly the rows changed, by id. Looks first on the reader, so a call that finds
        nothing due (the usual case) takes no write lock.
        """
        where = f"{_EXPIRABLE_SQL} AND expires_at <= ?"
        params: tuple[Any, ...] = (*_EXPIRABLE_ARGS, at)
        if device_id is not None:
            where += " AND device_id = ?"
            params += (device_id,)
        if not await self._fetch(f"SELECT 1 FROM commands WHERE {where} LIMIT 1", params):
            return []
        changed = await self._write(
            lambda db: _returning(
                db,
                f"UPDATE commands SET state = ? WHERE {where} RETURNING {_CMD_COLUMNS}",
                (CommandState.EXPIRED.value, *params),
            )
        )
        return sorted(changed, key=lambda command: command.id)

    async def mark_delivered(self, command_ids: Sequence[int], at: float) -> list[Command]:
        """Move pending commands to delivered; return only those that changed state, by id."""
        if not command_ids:
            return []
        marks = ",".join("?" * len(command_ids))
        changed = await self._write(
            lambda db: _returning(
                db,
                f"UPDATE commands SET state = ?, delivered_at = ?"
                f" WHERE id IN ({marks}) AND {_DELIVERABLE_SQL} RETURNING {_CMD_COLUMNS}",
                (CommandState.DELIVERED.value, at, *command_ids, *_DELIVERABLE_ARGS),
            )
        )
        return sorted(changed, key=lambda command: command.id)

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
        stored_result = dumps(result)

        def store(db: sqlite3.Connection) -> tuple[Command | None, bool]:
            acked = _returning(
                db,
                "UPDATE commands SET state = ?, acked_at = ?, success = ?, message = ?, result = ?"
                f" WHERE device_id = ? AND id = ? AND {_ACKABLE_SQL} RETURNING {_CMD_COLUMNS}",
                (
                    CommandState.ACKED.value,
                    at,
                    int(success),
                    message,
                    stored_result,
                    device_id,
                    command_id,
                    *_ACKABLE_ARGS,
                ),
            )
            if acked:
                return acked[0], True
            return _one_command(db, "device_id = ? AND id = ?", (device_id, command_id)), False

        current, changed = await self._write(store)
        if current is None:
            raise NotFound(f"command {command_id} does not exist for device {device_id!r}")
        assert changed or current.state in FINAL_STATES, f"open command {command_id} was not acked"
        return current, changed

    async def cancel_command(self, device_id: str, command_id: int, at: float) -> Command:
        """Cancel an open command; cancelling a cancelled one again returns it, any other is a Conflict."""

        def store(db: sqlite3.Connection) -> Command:
            current = _one_command(db, "device_id = ? AND id = ?", (device_id, command_id))
            if current is None:
                raise NotFound(f"command {command_id} does not exist for device {device_id!r}")
            if current.state is CommandState.CANCELLED:
                return current
            try:
                target = transition(current.state, CommandState.CANCELLED)
            except IllegalTransition as exc:
                raise _cannot_cancel(current) from exc
            cancelled = _returning(
                db,
                "UPDATE commands SET state = ?, cancelled_at = ?"
                f" WHERE device_id = ? AND id = ? AND {_CANCELLABLE_SQL} RETURNING {_CMD_COLUMNS}",
                (target.value, at, device_id, command_id, *_CANCELLABLE_ARGS),
            )
            if cancelled:
                return cancelled[0]
            # Settled between the read and the update (an ack won the race): report what it is now.
            latest = _one_command(db, "device_id = ? AND id = ?", (device_id, command_id))
            assert latest is not None
            if latest.state is CommandState.CANCELLED:
                return latest
            raise _cannot_cancel(latest)

        return await self._write(store)

    # identity: users and sessions

    async def create_user(self, user: User) -> None:
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO users (name, password_hash, role, created_at, changed_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (user.name, user.password_hash, user.role.value, user.created_at, user.changed_at),
            )
            if cur.rowcount == 0:
                raise Conflict(f"user {user.name!r} already exists")

    async def get_user(self, name: str) -> User | None:
        rows = await self._fetch(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self._fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")]

    async def update_user(
        self, name: str, at: float, password_hash: str | None = None, role: Role | None = None
    ) -> User:
        async with (
            self._tx() as db,
            db.execute(
                "UPDATE users SET password_hash = COALESCE(?, password_hash), role = COALESCE(?, role),"
                f" changed_at = ? WHERE name = ? RETURNING {_USER_COLUMNS}",
                (password_hash, role.value if role else None, at, name),
            ) as cur,
        ):
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"unknown user {name!r}")
        return _user(row)

    async def delete_user(self, name: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM users WHERE name = ?", (name,))
            await db.execute("DELETE FROM user_sessions WHERE user_name = ?", (name,))
            await db.execute("UPDATE api_keys SET revoked = 1 WHERE owner = ?", (name,))
            return cur.rowcount > 0

    async def create_session(self, session: UserSession) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO user_sessions (id_hash, user_name, created_at, expires_at, revoked)"
                " VALUES (?, ?, ?, ?, ?)",
                (session.id_hash, session.user, session.created_at, session.expires_at, session.revoked),
            )

    async def get_session(self, id_hash: str) -> UserSession | None:
        rows = await self._fetch(
            "SELECT id_hash, user_name, created_at, expires_at, revoked FROM user_sessions WHERE id_hash = ?",
            (id_hash,),
        )
        return UserSession(rows[0][0], rows[0][1], rows[0][2], rows[0][3], bool(rows[0][4])) if rows else None

    async def revoke_session(self, id_hash: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE user_sessions SET revoked = 1 WHERE id_hash = ? AND revoked = 0", (id_hash,)
            )
            return cur.rowcount > 0

    async def delete_ended_sessions(self, now: float) -> int:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM user_sessions WHERE revoked = 1 OR expires_at < ?", (now,))
            return cur.rowcount

    async def revoke_user_sessions(self, user: str) -> int:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE user_sessions SET revoked = 1 WHERE user_name = ? AND revoked = 0", (user,)
            )
            return cur.rowcount

    # identity: API keys

    async def create_api_key(self, key: ApiKey) -> None:
        async with self._tx() as db:
            await db.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.id,
                    key.owner,
                    key.name,
                    key.role.value,
                    key.key_hash,
                    key.created_at,
                    key.expires_at,
                    int(key.revoked),
                ),
            )

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        rows = await self._fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,))
        return _api_key(rows[0]) if rows else None

    async def list_api_keys(self, owner: str | None = None) -> list[ApiKey]:
        rows = await self._fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE revoked = 0 AND (?1 IS NULL OR owner = ?1)"
            " ORDER BY created_at, id",
            (owner,),
        )
        return [_api_key(r) for r in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKey | None:
        async with (
            self._tx() as db,
            db.execute(
                f"UPDATE api_keys SET revoked = 1 WHERE id = ? AND revoked = 0 RETURNING {_KEY_COLUMNS}",
                (key_id,),
            ) as cur,
        ):
            row = await cur.fetchone()
        return _api_key(row) if row is not None else None

    # identity: enrollment tokens and device credentials

    async def create_enrollment_token(self, token: EnrollmentToken) -> None:
        async with self._tx() as db:
            await db.execute(
                f"INSERT INTO enrollment_tokens ({_ENROLL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id,
                    token.token_hash,
                    token.created_by,
                    token.created_at,
                    token.expires_at,
                    token.max_uses,
                    token.uses,
                    dumps(list(token.tags)),
                    int(token.revoked),
                ),
            )

    async def list_enrollment_tokens(self) -> list[EnrollmentToken]:
        rows = await self._fetch(
            f"SELECT {_ENROLL_COLUMNS} FROM enrollment_tokens WHERE revoked = 0 ORDER BY created_at, id"
        )
        return [_enrollment_token(r) for r in rows]

    async def revoke_enrollment_token(self, token_id: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE enrollment_tokens SET revoked = 1 WHERE id = ? AND revoked = 0", (token_id,)
            )
            return cur.rowcount > 0

    async def enroll_device(
        self, token_hash: str, device_id: str, credential_hash: str, at: float
    ) -> DeviceCredential:
        async with self._tx() as db:
            async with db.execute(
                f"SELECT {_ENROLL_COLUMNS} FROM enrollment_tokens WHERE token_hash = ?", (token_hash,)
            ) as cur:
                row = await cur.fetchone()
            token = _enrollment_token(row) if row is not None else None
            if token is None or not token.usable(at):
                raise Unauthenticated("enrollment token unknown, expired, revoked or used up")
            async with db.execute(
                "SELECT revoked FROM device_credentials WHERE device_id = ?", (device_id,)
            ) as cur:
                held = await cur.fetchone()
            if held is not None:
                state = "revoked" if held[0] else "live"
                raise Conflict(
                    f"device {device_id!r} already has a {state} credential; an admin must reset it"
                    " (POST /devices/{id}/reset) before it can enroll again"
                )
            await db.execute("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?", (token.id,))
            credential = DeviceCredential(
                device_id, credential_hash, at, tags=token.tags, enrollment_token=token.id
            )
            await db.execute(
                f"INSERT INTO device_credentials ({_CRED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _credential_row(credential),
            )
        return credential

    async def get_device_credential(self, device_id: str) -> DeviceCredential | None:
        rows = await self._fetch(
            f"SELECT {_CRED_COLUMNS} FROM device_credentials WHERE device_id = ?", (device_id,)
        )
        return _credential(rows[0]) if rows else None

    async def find_device_credential(self, credential_hash: str) -> DeviceCredential | None:
        rows = await self._fetch(
            f"SELECT {_CRED_COLUMNS} FROM device_credentials WHERE credential_hash = ?1"
            f" UNION ALL SELECT {_CRED_COLUMNS} FROM device_credentials WHERE pending_hash = ?1",
            (credential_hash,),
        )
        return _credential(rows[0]) if rows else None

    async def revoke_device_credential(self, device_id: str, at: float) -> DeviceCredential | None:
        async with (
            self._tx() as db,
            db.execute(
                "UPDATE device_credentials SET revoked = 1, pending_hash = NULL WHERE device_id = ?"
                f" RETURNING {_CRED_COLUMNS}",
                (device_id,),
            ) as cur,
        ):
            row = await cur.fetchone()
        return _credential(row) if row is not None else None

    async def reset_device_credential(self, device_id: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM device_credentials WHERE device_id = ?", (device_id,))
            return cur.rowcount > 0

    async def stage_device_credential(self, device_id: str, pending_hash: str, at: float) -> DeviceCredential:
        async with self._tx() as db:
            current = await _one_credential(db, device_id)
            if current.revoked:
                raise Conflict(f"device {device_id!r}: its credential is revoked; reset and enroll it")
            await db.execute(
                "UPDATE device_credentials SET pending_hash = ? WHERE device_id = ?",
                (pending_hash, device_id),
            )
        return _replace_credential(current, pending_hash=pending_hash)

    async def confirm_device_credential(self, device_id: str, at: float) -> DeviceCredential:
        async with self._tx() as db:
            current = await _one_credential(db, device_id)
            if current.revoked or current.pending_hash is None:
                raise Conflict(f"device {device_id!r}: no rotation is pending")
            await db.execute(
                "UPDATE device_credentials SET credential_hash = pending_hash, pending_hash = NULL,"
                " rotated_at = ? WHERE device_id = ?",
                (at, device_id),
            )
        return _replace_credential(
            current, credential_hash=current.pending_hash, pending_hash=None, rotated_at=at
        )

    # identity: audit log

    async def add_audit(self, event: AuditEvent) -> AuditEvent:
        def store(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO audit (at, actor_kind, actor, action, target, address, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    event.at,
                    event.actor_kind,
                    event.actor,
                    event.action,
                    event.target,
                    event.address,
                    dumps(event.detail),
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        return _replace_audit(event, id=await self._write(store))

    async def list_audit(self, since: float | None, limit: int) -> list[AuditEvent]:
        rows = await self._fetch(
            "SELECT id, at, actor_kind, actor, action, target, address, detail FROM audit"
            " WHERE at >= ? ORDER BY id DESC LIMIT ?",
            (float("-inf") if since is None else since, limit),
        )
        return [AuditEvent(r[1], r[2], r[3], r[4], r[5], r[6], loads(r[7]), id=r[0]) for r in rows]


_TOUCH_FIELDS = ("hostname", "agent_version", "platform", "agent_tags", "commands")
_TOUCH = (
    "INSERT INTO devices (device_id, first_seen, last_seen"
    + "".join(f", {f}" for f in _TOUCH_FIELDS)
    + ") VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)"
    + " ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen"
    + "".join(f", {f} = COALESCE(excluded.{f}, {f})" for f in _TOUCH_FIELDS)
)


def _touch_row(touch: Touch) -> tuple[Any, ...]:
    device_id, seen_at, info = touch
    return (device_id, seen_at, *(info.get(f) for f in _TOUCH_FIELDS))


# One statement per device of a batch (it was three: a live sample per frame from 1,000 agents
# touches 1,000 rows): created if new, seen now, and its latest values replaced unless stored ones
# are newer (a replayed backlog). SET expressions read the row as it was, so their order is free.
_NEWER = "(devices.last_sample_ts IS NULL OR devices.last_sample_ts <= excluded.last_sample_ts)"
_UPSERT_LATEST = (
    "INSERT INTO devices (device_id, first_seen, last_seen, last_sample_ts, last_payload, hostname,"
    " agent_version, status, last_error) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen"
    + "".join(
        f", {c} = CASE WHEN {_NEWER} THEN excluded.{c} ELSE {c} END"
        for c in ("last_sample_ts", "last_payload")
    )
    + "".join(
        f", {c} = CASE WHEN {_NEWER} THEN COALESCE(excluded.{c}, {c}) ELSE {c} END"
        for c in ("hostname", "agent_version", "status", "last_error")
    )
)


def _add_devices(db: sqlite3.Connection, events: Sequence[PresenceEvent]) -> None:
    db.executemany(
        "INSERT INTO devices (device_id, first_seen) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(e.device_id, e.at) for e in events],
    )


def _store_presence(
    db: sqlite3.Connection, events: Sequence[PresenceEvent], hub: str | None = None, claim: bool = False
) -> None:
    """Set each device's presence and record the events. Offline releases the holding hub; online
    makes ``hub`` the holder when ``claim``, otherwise the holder stays."""
    db.executemany(
        "UPDATE devices SET online = ?1, connection = ?2, presence_reason = ?3, presence_since = ?4,"
        " hub_id = CASE WHEN NOT ?1 THEN NULL WHEN ?5 THEN ?6 ELSE hub_id END WHERE device_id = ?7",
        [(int(e.online), e.connection, e.reason, e.at, int(claim), hub, e.device_id) for e in events],
    )
    db.executemany(
        "INSERT INTO presence_events (device_id, online, reason, connection, at) VALUES (?, ?, ?, ?, ?)",
        [(e.device_id, int(e.online), e.reason, e.connection, e.at) for e in events],
    )


def _not_held_elsewhere(
    db: sqlite3.Connection, events: Sequence[PresenceEvent], hub: str
) -> list[PresenceEvent]:
    """The events whose device no hub but ``hub`` holds (a session another hub took over stays)."""
    cur = db.execute(
        "SELECT device_id FROM devices WHERE device_id IN (SELECT value FROM json_each(?))"
        " AND hub_id IS NOT NULL AND hub_id != ?",
        (dumps(sorted({e.device_id for e in events})), hub),
    )
    elsewhere = {row[0] for row in cur.fetchall()}
    return [e for e in events if e.device_id not in elsewhere]


class _NothingToRemove(Exception):
    """``delete_device`` found neither a device row nor a credential: roll back, answer None."""


_TYPED_FIELDS = frozenset({"cpu", "ram", "disk"})


def _value(field: str) -> str:
    return field if field in _TYPED_FIELDS else f"json_extract(extra, '$.{field}')"


def _part_aggregates(read: Callable[[str], str], named: bool = False) -> str:
    """Per metric (``read`` gives its SQL): how many samples had it, their sum, minimum and maximum
    (a "part" of a bucket); ``named``: as ``<metric>_n``, ``_sum``, ``_min``, ``_max``."""

    def part(function: str, m: str, suffix: str) -> str:
        return f", {function}({read(m)})" + (f" AS {m}_{suffix}" if named else "")

    return "".join(
        part("COUNT", m, "n") + part("TOTAL", m, "sum") + part("MIN", m, "min") + part("MAX", m, "max")
        for m in ROLLUP_FIELDS
    )


_PART_AGGREGATES = _part_aggregates(_value)
_NAMED_PART_AGGREGATES = _part_aggregates(_value, named=True)
_PART_COLUMNS = "".join(f", {m}_n, {m}_sum, {m}_min, {m}_max" for m in ROLLUP_FIELDS)
# Parts of one bucket merged: the newest sample's time, how many samples, the highest uptime,
# and per metric the average (NULL when no sample had it: x/0 is NULL), minimum and maximum.
_BUCKET_AGGREGATES = "MAX(last_ts), SUM(n), MAX(uptime_sec)" + "".join(
    f", SUM({m}_sum) / SUM({m}_n), MIN({m}_min), MAX({m}_max)" for m in ROLLUP_FIELDS
)


def _merge(column: str, function: str) -> str:
    """An upsert's merge of a minimum or maximum column (SQLite's MIN(NULL, x) is NULL)."""
    return f"{column} = COALESCE({function}({column}, excluded.{column}), {column}, excluded.{column})"


def _merged() -> list[str]:
    """An upsert's merge of one (device, span) row's sums, minimums and maximums."""
    merged = ["n = n + excluded.n", _merge("last_ts", "MAX"), _merge("uptime_sec", "MAX")]
    for m in ROLLUP_FIELDS:
        merged += [f"{m}_n = {m}_n + excluded.{m}_n", f"{m}_sum = {m}_sum + excluded.{m}_sum"]
        merged += [_merge(f"{m}_min", "MIN"), _merge(f"{m}_max", "MAX")]
    return merged


def _fold(tier: Tier) -> str:
    """Fold the batch (``temp.rollup_batch``, per minute) into ``tier``: new rows, or merged in."""
    parts = "".join(f", SUM({m}_n), SUM({m}_sum), MIN({m}_min), MAX({m}_max)" for m in ROLLUP_FIELDS)
    return (
        f"INSERT INTO {tier.table} (device_id, start, n, last_ts, uptime_sec{_PART_COLUMNS})"
        f" SELECT device_id, start / {tier.width} * {tier.width}, SUM(n), MAX(last_ts), MAX(uptime_sec)"
        f"{parts} FROM temp.rollup_batch WHERE device_id > ?1 AND (?2 IS NULL OR device_id <= ?2)"
        " GROUP BY 1, 2"
        f" ON CONFLICT (device_id, start) DO UPDATE SET {', '.join(_merged())}"
    )


# The samples with ids in ``(?1, ?2]`` per device and finest tier row (every tier's width is a
# multiple of it), in the writer connection's own temporary table.
_BATCH_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_batch AS SELECT * FROM main.rollup_minute WHERE 0",
    "CREATE UNIQUE INDEX IF NOT EXISTS temp.rollup_batch_key ON rollup_batch (device_id, start)",
)
_NEXT_BATCH = "SELECT COUNT(*), MAX(id) FROM (SELECT id FROM samples WHERE id > ?1 ORDER BY id LIMIT ?2)"


def _fill(where: str) -> str:
    """Sum the samples ``where`` selects into ``temp.rollup_batch``, per device and minute.

    Each metric is read out of ``extra`` once per sample (a materialized table), not once per
    aggregate: four ``json_extract`` calls per metric cost about a third more (29-40 against
    15-29 us per sample in one process, 60,000 samples of 10,000 devices).
    """
    width = TIERS[0].width
    return (
        f"WITH s AS MATERIALIZED (SELECT device_id, ts, uptime_sec{_EXTRACTED} FROM samples WHERE {where})"
        f" INSERT INTO temp.rollup_batch (device_id, start, n, last_ts, uptime_sec{_PART_COLUMNS})"
        f" SELECT device_id, CAST(ts / {width} AS INTEGER) * {width}, COUNT(*), MAX(ts),"
        f" MAX(uptime_sec){_EXTRACTED_AGGREGATES} FROM s GROUP BY 1, 2"
        f" ON CONFLICT (device_id, start) DO UPDATE SET {', '.join(_merged())}"
    )


_EXTRACTED = "".join(f", {_value(m)} AS v_{m}" for m in ROLLUP_FIELDS)
_EXTRACTED_AGGREGATES = _part_aggregates(lambda m: f"v_{m}")
_FILL_BATCH = _fill("id > ?1 AND id <= ?2")
_FILL_BATCH_AFTER = _fill("id > ?1 AND id <= ?2 AND device_id > ?3")  # what a pass cut short left
FOLD_ROWS = 20_000  # (device, minute) sums held before the tiers are updated
# (device, minute) sums folded into the tiers per transaction. Each chunk holds the write lock on
# the roll-up's thread, at nice 19: a command's insert that finds it taken waits for the chunk.
# At 10,000 agents (push scenario, light fleet, interleaved runs of two 20 s windows) chunks of
# 500 gave a push p99 of 25-44 ms from the request (one window 9.6 ms), 100 gave 7-14 ms; 50 no
# better (8-18 ms); the roll-up's CPU per sample within 3 % (1,000 live agents: 10.1-10.7 us at
# 500, 10.3-11.1 us at 100).
FOLD_CHUNK = 100
_FOLDED = "DELETE FROM temp.rollup_batch WHERE ?1 IS NULL OR device_id <= ?1"
# The last device of the next chunk: the ``?2``-th held row after device ``?1``, by device.
_CHUNK_END = (
    "SELECT device_id FROM temp.rollup_batch WHERE device_id > ?1 ORDER BY device_id LIMIT 1 OFFSET ?2"
)
_ROLLED_TO = "UPDATE rollup_state SET pass_high = ?, pass_device = ?"
_ROLLED_ALL = "UPDATE rollup_state SET watermark = ?, pass_high = NULL, pass_device = NULL"


def _create_batch_table(db: sqlite3.Connection) -> None:
    for statement in _BATCH_TABLE:
        db.execute(statement)


def _start_pass(db: sqlite3.Connection) -> tuple[int, int | None, str | None]:
    """Empty the held sums (left by a failed pass); the watermark, and how far a pass cut short
    got (``pass_high``, ``pass_device``)."""
    db.execute("DELETE FROM temp.rollup_batch")
    row = db.execute("SELECT watermark, pass_high, pass_device FROM rollup_state").fetchone()
    assert row is not None, "rollup_state has its row from migration 4"
    return int(row[0]), row[1], row[2]


def _sum_batch(db: sqlite3.Connection, low: int, batch: int) -> tuple[int, int, int]:
    """Sum the next ``batch`` samples after id ``low`` into the held sums: how many, the highest
    id, and how many (device, minute) sums are held now."""
    count, high = db.execute(_NEXT_BATCH, (low, batch)).fetchone()
    if count:
        db.execute(_FILL_BATCH, (low, high))
    # Rows are only added until a fold empties the table: its highest rowid is its size.
    held = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM temp.rollup_batch").fetchone()[0]
    return int(count), high, int(held)


def _fold_chunk(db: sqlite3.Connection, high: int, after: str) -> str | None:
    """Fold the held sums of the next ``FOLD_CHUNK`` devices after ``after`` into every tier and
    record how far the pass got; the last device folded, or None when none was left."""
    row = db.execute(_CHUNK_END, (after, FOLD_CHUNK - 1)).fetchone()
    upto = None if row is None else str(row[0])  # None: the held rows after ``after``
    for tier in TIERS:
        db.execute(_FOLD[tier.name], (after, upto))
    db.execute(_FOLDED, (upto,))
    if upto is None:
        db.execute(_ROLLED_ALL, (high,))
    else:
        db.execute(_ROLLED_TO, (high, upto))
    return upto


def _tier_buckets(tier: Tier) -> str:
    """Buckets of ``?1`` seconds (a multiple of the width) from the tier's rows starting in
    ``[?3, ?4]`` and the samples not folded yet in those rows' spans, newest ``?5`` buckets first.

    The unfolded samples are found by id (unary ``+`` keeps the planner on the rowid range).
    """
    start = f"CAST(ts / {tier.width} AS INTEGER) * {tier.width}"
    return (
        f"SELECT {_BUCKET_AGGREGATES} FROM ("
        f" SELECT start, n, last_ts, uptime_sec{_PART_COLUMNS} FROM {tier.table}"
        "  WHERE device_id = ?2 AND start >= ?3 AND start <= ?4"
        f" UNION ALL SELECT {start}, COUNT(*), MAX(ts), MAX(uptime_sec){_PART_AGGREGATES} FROM samples"
        "  WHERE id > (SELECT CASE WHEN ?2 <= pass_device THEN pass_high ELSE watermark END"
        "  FROM rollup_state) AND +device_id = ?2"
        f"  AND {start} >= ?3 AND {start} <= ?4 GROUP BY 1"
        ") GROUP BY CAST(start / ?1 AS INTEGER) ORDER BY 1 DESC LIMIT ?5"
    )


_FOLD = {tier.name: _fold(tier) for tier in TIERS}
_TIER_BUCKETS = {tier.name: _tier_buckets(tier) for tier in TIERS}
_RAW_BUCKETS = (
    f"SELECT {_BUCKET_AGGREGATES} FROM ("
    f" SELECT CAST(ts / ?1 AS INTEGER) AS bucket, COUNT(*) AS n, MAX(ts) AS last_ts,"
    f" MAX(uptime_sec) AS uptime_sec{_NAMED_PART_AGGREGATES}"
    "  FROM samples WHERE device_id = ?2 AND ts >= ?3 AND ts <= ?4 GROUP BY bucket"
    ") GROUP BY bucket ORDER BY 1 DESC LIMIT ?5"
)
# After deleting samples: the highest id left is at most the watermark when every one was folded,
# and SQLite gives the next sample that id + 1, so no new sample hides under the watermark.
_CLAMP_WATERMARK = (
    "UPDATE rollup_state SET watermark = MIN(watermark, COALESCE((SELECT MAX(id) FROM samples), 0))"
)


def _lower(since: float | None) -> float:
    return float("-inf") if since is None else since


def _upper(until: float | None) -> float:
    return float("inf") if until is None else until


def _bucket(device_id: str, r: aiosqlite.Row) -> Sample:
    """A bucket as a sample: core averages in their columns, the other averages in ``extra``
    beside ``count`` (samples in the bucket) and ``min`` / ``max`` per metric."""
    averages, lows, highs = {}, {}, {}
    for i, m in enumerate(ROLLUP_FIELDS):
        avg, low, high = r[3 + 3 * i : 6 + 3 * i]
        if avg is not None:
            averages[m], lows[m], highs[m] = avg, low, high
    core = [averages.pop(m, None) for m in ("cpu", "ram", "disk")]
    extra: dict[str, Any] = {**averages, "count": r[1], "min": lows, "max": highs}
    return Sample(device_id, r[0], core[0], core[1], core[2], r[2], None, extra)


async def _begin(db: aiosqlite.Connection) -> None:
    """BEGIN IMMEDIATE. Cancelled while waiting, the BEGIN still runs in the connection's thread:
    the transaction it opens is rolled back before the cancellation goes on, or every later
    write on the connection would fail ("cannot start a transaction within a transaction")."""
    begun = asyncio.ensure_future(db.execute("BEGIN IMMEDIATE"))
    try:
        await asyncio.shield(begun)
    except asyncio.CancelledError:
        with contextlib.suppress(sqlite3.Error):  # a BEGIN that failed opened nothing
            await begun
            await db.execute("ROLLBACK")
        raise


def _sample_row(s: Sample) -> tuple[Any, ...]:
    return (s.device_id, s.ts, s.cpu, s.ram, s.disk, s.uptime_sec, s.status, dumps(s.extra or None))


def _latest_row(s: Sample, seen_at: float) -> tuple[Any, ...]:
    payload = {"device_id": s.device_id, **s.to_json()}
    extra = s.extra
    return (
        s.device_id,
        seen_at,
        s.ts,
        dumps(payload),
        extra.get("hostname"),
        extra.get("agent_version"),
        s.status,
        extra.get("last_error"),
    )


def _one_command(db: sqlite3.Connection, where: str, params: Sequence[Any]) -> Command | None:
    row = db.execute(f"SELECT {_CMD_COLUMNS} FROM commands WHERE {where}", params).fetchone()
    return command_of(row) if row is not None else None


def _returning(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Command]:
    """Run an ``UPDATE ... RETURNING`` of command columns: exactly the rows it changed."""
    return [command_of(r) for r in db.execute(sql, params).fetchall()]


def _cannot_cancel(command: Command) -> Conflict:
    return Conflict(f"command {command.id} is already {command.state}; it cannot be cancelled")


_USER_COLUMNS = "name, password_hash, role, created_at, changed_at"
_KEY_COLUMNS = "id, owner, name, role, key_hash, created_at, expires_at, revoked"
_ENROLL_COLUMNS = "id, token_hash, created_by, created_at, expires_at, max_uses, uses, tags, revoked"
_CRED_COLUMNS = (
    "device_id, credential_hash, issued_at, pending_hash, rotated_at, revoked, tags, enrollment_token"
)


def _user(r: aiosqlite.Row) -> User:
    return User(r[0], r[1], Role(r[2]), r[3], r[4])


def _api_key(r: aiosqlite.Row) -> ApiKey:
    return ApiKey(r[0], r[1], r[2], Role(r[3]), r[4], r[5], r[6], bool(r[7]))


def _enrollment_token(r: aiosqlite.Row) -> EnrollmentToken:
    return EnrollmentToken(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(loads(r[7]) or ()), bool(r[8]))


def _credential(r: aiosqlite.Row) -> DeviceCredential:
    return DeviceCredential(r[0], r[1], r[2], r[3], r[4], bool(r[5]), tuple(loads(r[6]) or ()), r[7])


def _credential_row(c: DeviceCredential) -> tuple[Any, ...]:
    tags = dumps(list(c.tags))
    return (
        c.device_id,
        c.credential_hash,
        c.issued_at,
        c.pending_hash,
        c.rotated_at,
        int(c.revoked),
        tags,
        c.enrollment_token,
    )


_replace_credential = dataclasses.replace
_replace_audit = dataclasses.replace


async def _one_credential(db: aiosqlite.Connection, device_id: str) -> DeviceCredential:
    async with db.execute(
        f"SELECT {_CRED_COLUMNS} FROM device_credentials WHERE device_id = ?", (device_id,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"device {device_id!r} has no credential")
    return _credential(row)
