"""The alert tables on SQLite (DESIGN §11): a mixin of ``SQLiteStore``, which gives it ``_tx`` and
``_fetch`` (migration 9 in ``schema.py`` creates the tables, 11 adds ``alert_rules.notifiers``)."""

# ruff: noqa: S608 (SQL assembled from module constants and "?" placeholders only)
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite
import orjson

from monitor_server.store.alert_records import (
    AlertRule,
    AlertState,
    Notifier,
    OutboxItem,
    Silence,
    rule_of,
    rule_row,
)
from protocol.errors import Conflict

ALERTS_DDL = """
CREATE TABLE alert_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    metric      TEXT,
    op          TEXT,
    value       REAL,
    clear_value REAL,
    for_seconds REAL NOT NULL,
    severity    TEXT NOT NULL,
    selector    TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE alert_states (
    rule_id          INTEGER NOT NULL,
    device_id        TEXT NOT NULL,
    state            TEXT NOT NULL,
    since            REAL NOT NULL,
    value            REAL,
    fired_at         REAL,
    resolved_at      REAL,
    last_notified_at REAL,
    PRIMARY KEY (rule_id, device_id)
) WITHOUT ROWID;
CREATE TABLE notifiers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    url        TEXT NOT NULL,
    headers    TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE notification_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier_id     INTEGER NOT NULL,
    body            TEXT NOT NULL,
    created_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    delivered_at    REAL,
    last_error      TEXT
);
CREATE INDEX notification_outbox_open ON notification_outbox (notifier_id, id) WHERE delivered_at IS NULL;
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    matchers   TEXT NOT NULL,
    ends_at    REAL NOT NULL,
    comment    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

# The notifiers a rule goes to (a JSON array of ids; empty: all), and an index for the pending
# and firing states, which every hub lists for GET /alerts with several hubs.
ALERT_ROUTING_DDL = """
ALTER TABLE alert_rules ADD COLUMN notifiers TEXT NOT NULL DEFAULT '[]';
CREATE INDEX alert_states_active ON alert_states (rule_id, device_id) WHERE state <> 'ok';
"""

_RULE_COLUMNS = (
    "id, name, kind, metric, op, value, clear_value, for_seconds, severity, selector, created_at, updated_at,"
    " notifiers"
)
_STATE_COLUMNS = "rule_id, device_id, state, since, value, fired_at, resolved_at, last_notified_at"
_NOTIFIER_COLUMNS = "id, name, kind, url, headers, created_at"
_OUTBOX_COLUMNS = "id, notifier_id, body, created_at, attempts, next_attempt_at, delivered_at, last_error"
_SILENCE_COLUMNS = "id, matchers, ends_at, comment, created_by, created_at"
_UPSERT_STATE = (
    f"INSERT INTO alert_states ({_STATE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"
    " ON CONFLICT (rule_id, device_id) DO UPDATE SET state = excluded.state, since = excluded.since,"
    " value = excluded.value, fired_at = excluded.fired_at, resolved_at = excluded.resolved_at,"
    " last_notified_at = excluded.last_notified_at"
)


class SQLiteAlerts:
    """Every alert method of the ``Store`` protocol on SQLite."""

    def _tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError  # SQLiteStore's

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        raise NotImplementedError  # SQLiteStore's

    # rules

    async def create_alert_rule(self, rule: AlertRule) -> AlertRule:
        async with self._tx() as db:
            if await _taken(db, "alert_rules", rule.name, None):
                raise Conflict(f"an alert rule named {rule.name!r} exists")
            cur = await db.execute(
                f"INSERT INTO alert_rules ({_RULE_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?)",
                rule_row(rule),
            )
            rule_id = cur.lastrowid
        assert rule_id is not None
        return dataclasses.replace(rule, id=rule_id)

    async def list_alert_rules(self) -> list[AlertRule]:
        return [rule_of(r) for r in await self._fetch(f"SELECT {_RULE_COLUMNS} FROM alert_rules ORDER BY id")]

    async def get_alert_rule(self, rule_id: int) -> AlertRule | None:
        rows = await self._fetch(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE id = ?", (rule_id,))
        return rule_of(rows[0]) if rows else None

    async def update_alert_rule(self, rule: AlertRule) -> AlertRule | None:
        async with self._tx() as db:
            if await _taken(db, "alert_rules", rule.name, rule.id):
                raise Conflict(f"an alert rule named {rule.name!r} exists")
            cur = await db.execute(
                "UPDATE alert_rules SET name = ?, kind = ?, metric = ?, op = ?, value = ?, clear_value = ?,"
                " for_seconds = ?, severity = ?, selector = ?, created_at = ?, updated_at = ?, notifiers = ?"
                " WHERE id = ?",
                (*rule_row(rule), rule.id),
            )
            changed = cur.rowcount
        return rule if changed else None

    async def delete_alert_rule(self, rule_id: int) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM alert_rules WHERE id = ?", (rule_id,))
            await db.execute("DELETE FROM alert_states WHERE rule_id = ?", (rule_id,))
            return cur.rowcount > 0

    # states

    async def list_alert_states(self) -> list[AlertState]:
        rows = await self._fetch(f"SELECT {_STATE_COLUMNS} FROM alert_states ORDER BY rule_id, device_id")
        return [_state(r) for r in rows]

    async def list_active_alert_states(self) -> list[AlertState]:
        rows = await self._fetch(
            f"SELECT {_STATE_COLUMNS} FROM alert_states WHERE state <> 'ok' ORDER BY rule_id, device_id"
        )
        return [_state(r) for r in rows]

    async def delete_device_alert_states(self, device_id: str) -> int:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM alert_states WHERE device_id = ?", (device_id,))
            return cur.rowcount

    async def save_alert_states(self, states: Sequence[AlertState]) -> None:
        if states:
            async with self._tx() as db:
                await db.executemany(_UPSERT_STATE, [_state_row(s) for s in states])

    async def delete_alert_states(self, keys: Sequence[tuple[int, str]]) -> None:
        if keys:
            async with self._tx() as db:
                await db.executemany("DELETE FROM alert_states WHERE rule_id = ? AND device_id = ?", keys)

    async def enqueue_notifications(
        self, bodies: Sequence[tuple[int, dict[str, Any]]], notified: Sequence[AlertState], at: float
    ) -> list[int]:
        ids = []
        async with self._tx() as db:
            for notifier_id, body in bodies:
                cur = await db.execute(
                    "INSERT INTO notification_outbox (notifier_id, body, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?)",
                    (notifier_id, orjson.dumps(body).decode(), at, at),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
            await db.executemany(_UPSERT_STATE, [_state_row(s) for s in notified])
        return ids

    # the outbox

    async def pending_notifications(self, limit: int = 1000) -> list[OutboxItem]:
        rows = await self._fetch(
            f"SELECT {_OUTBOX_COLUMNS} FROM notification_outbox WHERE delivered_at IS NULL"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        return [_outbox(r) for r in rows]

    async def mark_notification_delivered(self, item_id: int, at: float) -> None:
        async with self._tx() as db:
            await db.execute(
                "UPDATE notification_outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
                (at, item_id),
            )

    async def mark_notification_failed(self, item_id: int, error: str, next_attempt_at: float) -> None:
        async with self._tx() as db:
            await db.execute(
                "UPDATE notification_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                " WHERE id = ?",
                (error[:500], next_attempt_at, item_id),
            )

    async def delete_delivered_notifications(self, before: float) -> int:
        async with self._tx() as db:
            cur = await db.execute(
                "DELETE FROM notification_outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                (before,),
            )
            return cur.rowcount

    # notifiers

    async def create_notifier(self, notifier: Notifier) -> Notifier:
        async with self._tx() as db:
            if await _taken(db, "notifiers", notifier.name, None):
                raise Conflict(f"a notifier named {notifier.name!r} exists")
            cur = await db.execute(
                "INSERT INTO notifiers (name, kind, url, headers, created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    notifier.name,
                    notifier.kind,
                    notifier.url,
                    orjson.dumps(notifier.headers).decode(),
                    notifier.created_at,
                ),
            )
            notifier_id = cur.lastrowid
        assert notifier_id is not None
        return dataclasses.replace(notifier, id=notifier_id)

    async def list_notifiers(self) -> list[Notifier]:
        rows = await self._fetch(f"SELECT {_NOTIFIER_COLUMNS} FROM notifiers ORDER BY id")
        return [_notifier(r) for r in rows]

    async def delete_notifier(self, notifier_id: int) -> bool:
        """The notifier and what its outbox still holds."""
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM notifiers WHERE id = ?", (notifier_id,))
            await db.execute("DELETE FROM notification_outbox WHERE notifier_id = ?", (notifier_id,))
            return cur.rowcount > 0

    # silences

    async def create_silence(self, silence: Silence) -> Silence:
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO silences (matchers, ends_at, comment, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    orjson.dumps(silence.matchers).decode(),
                    silence.ends_at,
                    silence.comment,
                    silence.created_by,
                    silence.created_at,
                ),
            )
            silence_id = cur.lastrowid
        assert silence_id is not None
        return dataclasses.replace(silence, id=silence_id)

    async def list_silences(self, active_at: float | None = None) -> list[Silence]:
        rows = await self._fetch(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE ends_at > ? ORDER BY id",
            (float("-inf") if active_at is None else active_at,),
        )
        return [_silence(r) for r in rows]

    async def delete_silence(self, silence_id: int) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM silences WHERE id = ?", (silence_id,))
            return cur.rowcount > 0


async def _taken(db: aiosqlite.Connection, table: str, name: str, other_than: int | None) -> bool:
    async with db.execute(f"SELECT id FROM {table} WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    return row is not None and row[0] != other_than


def _state_row(s: AlertState) -> tuple[Any, ...]:
    return (s.rule_id, s.device_id, s.state, s.since, s.value, s.fired_at, s.resolved_at, s.last_notified_at)


def _state(r: aiosqlite.Row) -> AlertState:
    return AlertState(*(r[k] for k in _STATE_COLUMNS.split(", ")))


def _notifier(r: aiosqlite.Row) -> Notifier:
    return Notifier(r["id"], r["name"], r["kind"], r["url"], orjson.loads(r["headers"]), r["created_at"])


def _outbox(r: aiosqlite.Row) -> OutboxItem:
    return OutboxItem(
        r["id"],
        r["notifier_id"],
        orjson.loads(r["body"]),
        r["created_at"],
        r["attempts"],
        r["next_attempt_at"],
        r["delivered_at"],
        r["last_error"],
    )


def _silence(r: aiosqlite.Row) -> Silence:
    return Silence(
        r["id"], orjson.loads(r["matchers"]), r["ends_at"], r["comment"], r["created_by"], r["created_at"]
    )
