"""The identity tables on PostgreSQL (DESIGN §10, §13): users, sessions, API keys, enrollment
tokens, device credentials and the audit log, behaving exactly as ``SQLiteStore`` does.

``PgIdentity`` is a mixin: ``PostgresStore`` creates ``_pool`` and runs ``IDENTITY_DDL`` in its
first migration. Times are epoch seconds in DOUBLE PRECISION, so records equal SQLite's.
"""

# ruff: noqa: S608 (SQL assembled from module constants and "$n" placeholders only)
from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from monitor_server.store.records import (
    ApiKey,
    AuditEvent,
    DeviceCredential,
    EnrollmentToken,
    User,
    UserSession,
)
from protocol.errors import Conflict, NotFound, Unauthenticated
from protocol.identity import Role

# Secrets are stored only as digests: SHA-256 hex for random tokens, Argon2id for passwords.
# Unqualified names: the connection's search_path chooses the schema. Names and ids are
# COLLATE "C": compared and ordered by bytes, as SQLite does.
IDENTITY_DDL = """
CREATE TABLE users (
    name          TEXT COLLATE "C" PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    changed_at    DOUBLE PRECISION NOT NULL
);
CREATE TABLE user_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT COLLATE "C" NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX user_sessions_user ON user_sessions (user_name);
CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    owner      TEXT COLLATE "C" NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX api_keys_owner ON api_keys (owner);
CREATE TABLE enrollment_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    max_uses   BIGINT NOT NULL,
    uses       BIGINT NOT NULL DEFAULT 0,
    tags       TEXT[] NOT NULL DEFAULT '{}',
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE device_credentials (
    device_id        TEXT COLLATE "C" PRIMARY KEY,
    credential_hash  TEXT NOT NULL UNIQUE,
    pending_hash     TEXT UNIQUE,
    issued_at        DOUBLE PRECISION NOT NULL,
    rotated_at       DOUBLE PRECISION,
    revoked          BOOLEAN NOT NULL DEFAULT FALSE,
    tags             TEXT[] NOT NULL DEFAULT '{}',
    enrollment_token TEXT
);
CREATE TABLE audit (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         DOUBLE PRECISION NOT NULL,
    actor_kind TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    address    TEXT,
    detail     TEXT
);
CREATE INDEX audit_at ON audit (at);
"""

_USER_COLUMNS = "name, password_hash, role, created_at, changed_at"
_SESSION_COLUMNS = "id_hash, user_name, created_at, expires_at, revoked"
_KEY_COLUMNS = "id, owner, name, role, key_hash, created_at, expires_at, revoked"
_ENROLL_COLUMNS = "id, token_hash, created_by, created_at, expires_at, max_uses, uses, tags, revoked"
_CRED_COLUMNS = (
    "device_id, credential_hash, issued_at, pending_hash, rotated_at, revoked, tags, enrollment_token"
)
# detail is JSON text, as in SQLite: the same dict back, and "\u0000" (which JSONB refuses) kept.
_AUDIT_COLUMNS = "id, at, actor_kind, actor, action, target, address, detail"


class PgIdentity:
    """Every identity method of the ``Store`` protocol, on the pool its subclass opens."""

    _pool: asyncpg.Pool

    # users and sessions

    async def create_user(self, user: User) -> None:
        status = await self._pool.execute(
            f"INSERT INTO users ({_USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            user.name,
            user.password_hash,
            user.role.value,
            user.created_at,
            user.changed_at,
        )
        if _count(status) == 0:
            raise Conflict(f"user {user.name!r} already exists")

    async def get_user(self, name: str) -> User | None:
        if _unstorable(name):
            return None
        row = await self._pool.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE name = $1", name)
        return _user(row) if row is not None else None

    async def list_users(self) -> list[User]:
        rows = await self._pool.fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")
        return [_user(r) for r in rows]

    async def update_user(
        self, name: str, at: float, password_hash: str | None = None, role: Role | None = None
    ) -> User:
        values = (password_hash, role.value if role else None, at, name)
        row = None if _unstorable(name) else await self._pool.fetchrow(_UPDATE_USER, *values)
        if row is None:
            raise NotFound(f"unknown user {name!r}")
        return _user(row)

    async def delete_user(self, name: str) -> bool:
        if _unstorable(name):
            return False
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM users WHERE name = $1", name)
            await conn.execute("DELETE FROM user_sessions WHERE user_name = $1", name)
            await conn.execute("UPDATE api_keys SET revoked = TRUE WHERE owner = $1", name)
        return _count(status) > 0

    async def create_session(self, session: UserSession) -> None:
        await self._pool.execute(
            f"INSERT INTO user_sessions ({_SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)",
            session.id_hash,
            session.user,
            session.created_at,
            session.expires_at,
            session.revoked,
        )

    async def get_session(self, id_hash: str) -> UserSession | None:
        row = await self._pool.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM user_sessions WHERE id_hash = $1", id_hash
        )
        return UserSession(row[0], row[1], row[2], row[3], row[4]) if row is not None else None

    async def revoke_session(self, id_hash: str) -> bool:
        status = await self._pool.execute(
            "UPDATE user_sessions SET revoked = TRUE WHERE id_hash = $1 AND NOT revoked", id_hash
        )
        return _count(status) > 0

    async def delete_ended_sessions(self, now: float) -> int:
        status = await self._pool.execute("DELETE FROM user_sessions WHERE revoked OR expires_at < $1", now)
        return _count(status)

    async def revoke_user_sessions(self, user: str) -> int:
        if _unstorable(user):
            return 0
        status = await self._pool.execute(
            "UPDATE user_sessions SET revoked = TRUE WHERE user_name = $1 AND NOT revoked", user
        )
        return _count(status)

    # API keys

    async def create_api_key(self, key: ApiKey) -> None:
        await self._pool.execute(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            key.id,
            key.owner,
            key.name,
            key.role.value,
            key.key_hash,
            key.created_at,
            key.expires_at,
            key.revoked,
        )

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._pool.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1", key_hash)
        return _api_key(row) if row is not None else None

    async def list_api_keys(self, owner: str | None = None) -> list[ApiKey]:
        rows = await self._pool.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE NOT revoked AND ($1::text IS NULL OR owner = $1)"
            " ORDER BY created_at, id",
            owner,
        )
        return [_api_key(r) for r in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKey | None:
        if _unstorable(key_id):
            return None
        row = await self._pool.fetchrow(
            f"UPDATE api_keys SET revoked = TRUE WHERE id = $1 AND NOT revoked RETURNING {_KEY_COLUMNS}",
            key_id,
        )
        return _api_key(row) if row is not None else None

    # enrollment tokens and device credentials

    async def create_enrollment_token(self, token: EnrollmentToken) -> None:
        await self._pool.execute(
            f"INSERT INTO enrollment_tokens ({_ENROLL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            token.id,
            token.token_hash,
            token.created_by,
            token.created_at,
            token.expires_at,
            token.max_uses,
            token.uses,
            list(token.tags),
            token.revoked,
        )

    async def list_enrollment_tokens(self) -> list[EnrollmentToken]:
        rows = await self._pool.fetch(
            f"SELECT {_ENROLL_COLUMNS} FROM enrollment_tokens WHERE NOT revoked ORDER BY created_at, id"
        )
        return [_enrollment_token(r) for r in rows]

    async def revoke_enrollment_token(self, token_id: str) -> bool:
        if _unstorable(token_id):
            return False
        status = await self._pool.execute(
            "UPDATE enrollment_tokens SET revoked = TRUE WHERE id = $1 AND NOT revoked", token_id
        )
        return _count(status) > 0

    async def enroll_device(
        self, token_hash: str, device_id: str, credential_hash: str, at: float
    ) -> DeviceCredential:
        async with self._pool.acquire() as conn, conn.transaction():
            # The conditional UPDATE locks the token row: a concurrent enrollment waits, then
            # re-checks the use count, so two can never both spend the last use.
            spent = await conn.fetchrow(_SPEND_USE, token_hash, at)
            if spent is None:
                raise Unauthenticated("enrollment token unknown, expired, revoked or used up")
            credential = DeviceCredential(
                device_id, credential_hash, at, tags=tuple(spent[1]), enrollment_token=spent[0]
            )
            if _count(await conn.execute(_INSERT_CREDENTIAL, *_credential_row(credential))) == 0:
                raise await _held(conn, device_id)  # rolls the spent use back
        return credential

    async def get_device_credential(self, device_id: str) -> DeviceCredential | None:
        row = await self._pool.fetchrow(
            f"SELECT {_CRED_COLUMNS} FROM device_credentials WHERE device_id = $1", device_id
        )
        return _credential(row) if row is not None else None

    async def find_device_credential(self, credential_hash: str) -> DeviceCredential | None:
        # A live digest first, then a pending one (as SQLite's UNION ALL gives them).
        row = await self._pool.fetchrow(
            f"SELECT {_CRED_COLUMNS} FROM device_credentials WHERE credential_hash = $1 OR pending_hash = $1"
            " ORDER BY credential_hash = $1 DESC LIMIT 1",
            credential_hash,
        )
        return _credential(row) if row is not None else None

    async def revoke_device_credential(self, device_id: str, at: float) -> DeviceCredential | None:
        row = await self._pool.fetchrow(
            "UPDATE device_credentials SET revoked = TRUE, pending_hash = NULL WHERE device_id = $1"
            f" RETURNING {_CRED_COLUMNS}",
            device_id,
        )
        return _credential(row) if row is not None else None

    async def reset_device_credential(self, device_id: str) -> bool:
        status = await self._pool.execute("DELETE FROM device_credentials WHERE device_id = $1", device_id)
        return _count(status) > 0

    async def stage_device_credential(self, device_id: str, pending_hash: str, at: float) -> DeviceCredential:
        async with self._pool.acquire() as conn, conn.transaction():
            current = await _locked_credential(conn, device_id)
            if current.revoked:
                raise Conflict(f"device {device_id!r}: its credential is revoked; reset and enroll it")
            await conn.execute(
                "UPDATE device_credentials SET pending_hash = $1 WHERE device_id = $2",
                pending_hash,
                device_id,
            )
        return dataclasses.replace(current, pending_hash=pending_hash)

    async def confirm_device_credential(self, device_id: str, at: float) -> DeviceCredential:
        async with self._pool.acquire() as conn, conn.transaction():
            current = await _locked_credential(conn, device_id)
            if current.revoked or current.pending_hash is None:
                raise Conflict(f"device {device_id!r}: no rotation is pending")
            await conn.execute(
                "UPDATE device_credentials SET credential_hash = pending_hash, pending_hash = NULL,"
                " rotated_at = $1 WHERE device_id = $2",
                at,
                device_id,
            )
        return dataclasses.replace(
            current, credential_hash=current.pending_hash, pending_hash=None, rotated_at=at
        )

    # audit log

    async def add_audit(self, event: AuditEvent) -> AuditEvent:
        return dataclasses.replace(event, id=await self._insert_audit(event))

    async def _insert_audit(self, event: AuditEvent) -> int:
        return int(
            await self._pool.fetchval(
                "INSERT INTO audit (at, actor_kind, actor, action, target, address, detail)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                event.at,
                *map(_storable, (event.actor_kind, event.actor, event.action, event.target, event.address)),
                _dumps(event.detail),
            )
        )

    async def list_audit(self, since: float | None, limit: int) -> list[AuditEvent]:
        rows = await self._pool.fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE at >= $1 ORDER BY id DESC LIMIT $2",
            float("-inf") if since is None else since,
            None if limit < 0 else limit,  # SQLite's LIMIT -1: no limit (NULL in PostgreSQL)
        )
        return [AuditEvent(r[1], r[2], r[3], r[4], r[5], r[6], _loads(r[7]), id=r[0]) for r in rows]


_UPDATE_USER = (
    "UPDATE users SET password_hash = COALESCE($1, password_hash), role = COALESCE($2, role),"
    f" changed_at = $3 WHERE name = $4 RETURNING {_USER_COLUMNS}"
)
_SPEND_USE = (
    "UPDATE enrollment_tokens SET uses = uses + 1"
    " WHERE token_hash = $1 AND NOT revoked AND uses < max_uses AND expires_at > $2"
    " RETURNING id, tags"
)
_INSERT_CREDENTIAL = (
    f"INSERT INTO device_credentials ({_CRED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (device_id) DO NOTHING"
)


def _count(status: str) -> int:
    """Rows a command touched, from its status tag (``UPDATE 2``, ``INSERT 0 1``)."""
    return int(status.rsplit(" ", 1)[-1])


def _unstorable(key: str) -> bool:
    """PostgreSQL text cannot hold NUL, so no row has such a key (names from URLs and logins)."""
    return "\x00" in key


def _storable(text: str | None) -> str | None:
    """Audit text as PostgreSQL can hold it: NUL (from a login name, say) becomes U+FFFD."""
    return None if text is None else text.replace("\x00", "\ufffd")


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _user(r: asyncpg.Record) -> User:
    return User(r[0], r[1], Role(r[2]), r[3], r[4])


def _api_key(r: asyncpg.Record) -> ApiKey:
    return ApiKey(r[0], r[1], r[2], Role(r[3]), r[4], r[5], r[6], r[7])


def _enrollment_token(r: asyncpg.Record) -> EnrollmentToken:
    return EnrollmentToken(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(r[7]), r[8])


def _credential(r: asyncpg.Record) -> DeviceCredential:
    return DeviceCredential(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6]), r[7])


def _credential_row(c: DeviceCredential) -> tuple[Any, ...]:
    return (
        c.device_id,
        c.credential_hash,
        c.issued_at,
        c.pending_hash,
        c.rotated_at,
        c.revoked,
        list(c.tags),
        c.enrollment_token,
    )


async def _locked_credential(conn: PoolConnectionProxy, device_id: str) -> DeviceCredential:
    """The device's credential, its row locked until the transaction ends; NotFound if none."""
    row = await conn.fetchrow(
        f"SELECT {_CRED_COLUMNS} FROM device_credentials WHERE device_id = $1 FOR UPDATE", device_id
    )
    if row is None:
        raise NotFound(f"device {device_id!r} has no credential")
    return _credential(row)


async def _held(conn: PoolConnectionProxy, device_id: str) -> Conflict:
    """The Conflict for enrolling an id that already holds a credential (live or revoked)."""
    revoked = await conn.fetchval("SELECT revoked FROM device_credentials WHERE device_id = $1", device_id)
    state = "revoked" if revoked else "live"
    return Conflict(
        f"device {device_id!r} already has a {state} credential; an admin must reset it"
        " (POST /devices/{id}/reset) before it can enroll again"
    )
