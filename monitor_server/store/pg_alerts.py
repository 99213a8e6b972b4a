"""The alert tables on PostgreSQL (DESIGN §11), behaving as ``SQLiteAlerts`` does.

``PgAlerts`` is a mixin of ``PostgresStore`` (which opens ``_pool``); ``ALERTS_DDL`` is migration 2
in ``pg_schema.py``, ``ALERT_ROUTING_DDL`` migration 4. JSON is stored as text and times as epoch
seconds, so records equal SQLite's.
"""

# ruff: noqa: S608 (SQL assembled from module constants and "$n" placeholders only)
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import asyncpg
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
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    metric      TEXT,
    op          TEXT,
    value       DOUBLE PRECISION,
    clear_value DOUBLE PRECISION,
    for_seconds DOUBLE PRECISION NOT NULL,
    severity    TEXT NOT NULL,
    selector    TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE TABLE alert_states (
    rule_id          BIGINT NOT NULL,
    device_id        TEXT COLLATE "C" NOT NULL,
    state            TEXT NOT NULL,
    since            DOUBLE PRECISION NOT NULL,
    value            DOUBLE PRECISION,
    fired_at         DOUBLE PRECISION,
    resolved_at      DOUBLE PRECISION,
    last_notified_at DOUBLE PRECISION,
    PRIMARY KEY (rule_id, device_id)
);
CREATE TABLE notifiers (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    url        TEXT NOT NULL,
    headers    TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE notification_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notifier_id     BIGINT NOT NULL,
    body            TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    delivered_at    DOUBLE PRECISION,
    last_error      TEXT
);
CREATE INDEX notification_outbox_open ON notification_outbox (notifier_id, id) WHERE delivered_at IS NULL;
CREATE TABLE silences (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    matchers   TEXT NOT NULL,
    ends_at    DOUBLE PRECISION NOT NULL,
    comment    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
"""

# As SQLite's: the notifiers a rule goes to (JSON ids; empty: all), the active states' index.
ALERT_ROUTING_DDL = """
ALTER TABLE alert_rules ADD COLUMN notifiers TEXT NOT NULL DEFAULT '[]';
CREATE INDEX alert_states_active ON alert_states (rule_id, device_id) WHERE state <> 'ok';
"""

_RULE_FIELDS = (
    "name, kind, metric, op, value, clear_value, for_seconds, severity, selector, created_at, updated_at,"
    " notifiers"
)
_RULE_COLUMNS = "id, " + _RULE_FIELDS
_STATE_COLUMNS = "rule_id, device_id, state, since, value, fired_at, resolved_at, last_notified_at"
_NOTIFIER_COLUMNS = "id, name, kind, url, headers, created_at"
_OUTBOX_COLUMNS = "id, notifier_id, body, created_at, attempts, next_attempt_at, delivered_at, last_error"
_SILENCE_COLUMNS = "id, matchers, ends_at, comment, created_by, created_at"
_UPSERT_STATE = (
    f"INSERT INTO alert_states ({_STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (rule_id, device_id) DO UPDATE SET state = excluded.state, since = excluded.since,"
    " value = excluded.value, fired_at = excluded.fired_at, resolved_at = excluded.resolved_at,"
    " last_notified_at = excluded.last_notified_at"
)
_BIGINT_MAX = 2**63 - 1


class PgAlerts:
    """Every alert method of the ``Store`` protocol, on the pool its subclass opens."""

    _pool: asyncpg.Pool

    # rules

    async def create_alert_rule(self, rule: AlertRule) -> AlertRule:
        try:
            rule_id = await self._pool.fetchval(
                f"INSERT INTO alert_rules ({_RULE_FIELDS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                *rule_row(rule),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"an alert rule named {rule.name!r} exists") from None
        return dataclasses.replace(rule, id=rule_id)

    async def list_alert_rules(self) -> list[AlertRule]:
        return [
            rule_of(r) for r in await self._pool.fetch(f"SELECT {_RULE_COLUMNS} FROM alert_rules ORDER BY id")
        ]

    async def get_alert_rule(self, rule_id: int) -> AlertRule | None:
        if not _id(rule_id):
            return None
        row = await self._pool.fetchrow(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE id = $1", rule_id)
        return None if row is None else rule_of(row)

    async def update_alert_rule(self, rule: AlertRule) -> AlertRule | None:
        if not _id(rule.id):
            return None
        try:
            status = await self._pool.execute(
                "UPDATE alert_rules SET name = $1, kind = $2, metric = $3, op = $4, value = $5,"
                " clear_value = $6, for_seconds = $7, severity = $8, selector = $9, created_at = $10,"
                " updated_at = $11, notifiers = $12 WHERE id = $13",
                *rule_row(rule),
                rule.id,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"an alert rule named {rule.name!r} exists") from None
        return rule if _count(status) else None

    async def delete_alert_rule(self, rule_id: int) -> bool:
        if not _id(rule_id):
            return False
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM alert_rules WHERE id = $1", rule_id)
            await conn.execute("DELETE FROM alert_states WHERE rule_id = $1", rule_id)
        return _count(status) > 0

    # states

    async def list_alert_states(self) -> list[AlertState]:
        rows = await self._pool.fetch(
            f"SELECT {_STATE_COLUMNS} FROM alert_states ORDER BY rule_id, device_id"
        )
        return [AlertState(*r) for r in rows]

    async def list_active_alert_states(self) -> list[AlertState]:
        rows = await self._pool.fetch(
            f"SELECT {_STATE_COLUMNS} FROM alert_states WHERE state <> 'ok' ORDER BY rule_id, device_id"
        )
        return [AlertState(*r) for r in rows]

    async def delete_device_alert_states(self, device_id: str) -> int:
        return _count(await self._pool.execute("DELETE FROM alert_states WHERE device_id = $1", device_id))

    async def save_alert_states(self, states: Sequence[AlertState]) -> None:
        if states:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.executemany(_UPSERT_STATE, [_state_row(s) for s in states])

    async def delete_alert_states(self, keys: Sequence[tuple[int, str]]) -> None:
        if keys:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    "DELETE FROM alert_states WHERE rule_id = $1 AND device_id = $2", list(keys)
                )

    async def enqueue_notifications(
        self, bodies: Sequence[tuple[int, dict[str, Any]]], notified: Sequence[AlertState], at: float
    ) -> list[int]:
        ids = []
        async with self._pool.acquire() as conn, conn.transaction():
            for notifier_id, body in bodies:
                ids.append(
                    await conn.fetchval(
                        "INSERT INTO notification_outbox (notifier_id, body, created_at, next_attempt_at)"
                        " VALUES ($1, $2, $3, $3) RETURNING id",
                        notifier_id,
                        orjson.dumps(body).decode(),
                        at,
                    )
                )
            if notified:
                await conn.executemany(_UPSERT_STATE, [_state_row(s) for s in notified])
        return ids

    # the outbox

    async def pending_notifications(self, limit: int = 1000) -> list[OutboxItem]:
        rows = await self._pool.fetch(
            f"SELECT {_OUTBOX_COLUMNS} FROM notification_outbox WHERE delivered_at IS NULL"
            " ORDER BY id LIMIT $1",
            limit,
        )
        return [_outbox(r) for r in rows]

    async def mark_notification_delivered(self, item_id: int, at: float) -> None:
        await self._pool.execute(
            "UPDATE notification_outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2",
            at,
            item_id,
        )

    async def mark_notification_failed(self, item_id: int, error: str, next_attempt_at: float) -> None:
        await self._pool.execute(
            "UPDATE notification_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2"
            " WHERE id = $3",
            error[:500].replace("\x00", "\ufffd"),
            next_attempt_at,
            item_id,
        )

    async def delete_delivered_notifications(self, before: float) -> int:
        status = await self._pool.execute(
            "DELETE FROM notification_outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1", before
        )
        return _count(status)

    # notifiers

    async def create_notifier(self, notifier: Notifier) -> Notifier:
        try:
            notifier_id = await self._pool.fetchval(
                "INSERT INTO notifiers (name, kind, url, headers, created_at) VALUES ($1, $2, $3, $4, $5)"
                " RETURNING id",
                notifier.name,
                notifier.kind,
                notifier.url,
                orjson.dumps(notifier.headers).decode(),
                notifier.created_at,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a notifier named {notifier.name!r} exists") from None
        return dataclasses.replace(notifier, id=notifier_id)

    async def list_notifiers(self) -> list[Notifier]:
        rows = await self._pool.fetch(f"SELECT {_NOTIFIER_COLUMNS} FROM notifiers ORDER BY id")
        return [
            Notifier(r["id"], r["name"], r["kind"], r["url"], orjson.loads(r["headers"]), r["created_at"])
            for r in rows
        ]

    async def delete_notifier(self, notifier_id: int) -> bool:
        if not _id(notifier_id):
            return False
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM notifiers WHERE id = $1", notifier_id)
            await conn.execute("DELETE FROM notification_outbox WHERE notifier_id = $1", notifier_id)
        return _count(status) > 0

    # silences

    async def create_silence(self, silence: Silence) -> Silence:
        silence_id = await self._pool.fetchval(
            "INSERT INTO silences (matchers, ends_at, comment, created_by, created_at)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            orjson.dumps(silence.matchers).decode(),
            silence.ends_at,
            silence.comment,
            silence.created_by,
            silence.created_at,
        )
        return dataclasses.replace(silence, id=silence_id)

    async def list_silences(self, active_at: float | None = None) -> list[Silence]:
        rows = await self._pool.fetch(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY id",
            float("-inf") if active_at is None else active_at,
        )
        return [
            Silence(
                r["id"],
                orjson.loads(r["matchers"]),
                r["ends_at"],
                r["comment"],
                r["created_by"],
                r["created_at"],
            )
            for r in rows
        ]

    async def delete_silence(self, silence_id: int) -> bool:
        if not _id(silence_id):
            return False
        return _count(await self._pool.execute("DELETE FROM silences WHERE id = $1", silence_id)) > 0


def _id(value: int) -> bool:
    """Whether ``value`` can be a stored id (asyncpg refuses integers past BIGINT)."""
    return 0 < value <= _BIGINT_MAX


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


def _state_row(s: AlertState) -> tuple[Any, ...]:
    return (s.rule_id, s.device_id, s.state, s.since, s.value, s.fired_at, s.resolved_at, s.last_notified_at)


def _outbox(r: asyncpg.Record) -> OutboxItem:
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
