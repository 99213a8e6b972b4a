"""The release tables on PostgreSQL (DESIGN §12), behaving as ``SQLiteReleases`` does.

``PgReleases`` is a mixin of ``PostgresStore`` (which opens ``_pool``); ``RELEASES_DDL`` is a
migration in ``pg_schema.py``. JSON is stored as text and times as epoch seconds, so records equal
SQLite's.
"""

# ruff: noqa: S608 (SQL assembled from module constants and "$n" placeholders only)
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from monitor_server.store.release_records import Release, ReleaseDevice, Rollout, release_of, release_row
from protocol.errors import Conflict

RELEASES_DDL = """
CREATE TABLE releases (
    version    TEXT COLLATE "C" PRIMARY KEY,
    sha256     TEXT NOT NULL,
    signature  TEXT NOT NULL,
    size       BIGINT NOT NULL,
    manifest   TEXT NOT NULL,
    bundle     BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE rollouts (
    version         TEXT COLLATE "C" PRIMARY KEY,
    target          TEXT NOT NULL,
    allow_downgrade BOOLEAN NOT NULL,
    paused          BOOLEAN NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL
);
CREATE TABLE release_devices (
    version    TEXT COLLATE "C" NOT NULL,
    device_id  TEXT COLLATE "C" NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (version, device_id)
);
"""

_RELEASE_COLUMNS = "version, sha256, signature, size, manifest, created_at, created_by"
_ROLLOUT_COLUMNS = "version, target, allow_downgrade, paused, created_at"
_DEVICE_COLUMNS = "version, device_id, state, reason, updated_at"


class PgReleases:
    """Every release method of the ``Store`` protocol, on the pool its subclass opens."""

    _pool: asyncpg.Pool

    async def create_release(self, release: Release, bundle: bytes) -> None:
        try:
            await self._pool.execute(
                f"INSERT INTO releases ({_RELEASE_COLUMNS}, bundle) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                *release_row(release),
                bundle,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"release {release.version} is already published") from None

    async def list_releases(self) -> list[Release]:
        rows = await self._pool.fetch(f"SELECT {_RELEASE_COLUMNS} FROM releases ORDER BY created_at, version")
        return [release_of(r) for r in rows]

    async def get_release(self, version: str) -> Release | None:
        row = await self._pool.fetchrow(
            f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE version = $1", version
        )
        return None if row is None else release_of(row)

    async def release_bundle(self, version: str) -> bytes | None:
        value = await self._pool.fetchval("SELECT bundle FROM releases WHERE version = $1", version)
        return None if value is None else bytes(value)

    async def save_rollout(self, rollout: Rollout) -> None:
        await self._pool.execute(
            f"INSERT INTO rollouts ({_ROLLOUT_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (version) DO UPDATE SET target = excluded.target,"
            " allow_downgrade = excluded.allow_downgrade, paused = excluded.paused,"
            " created_at = excluded.created_at",
            rollout.version,
            orjson.dumps(rollout.target).decode(),
            rollout.allow_downgrade,
            rollout.paused,
            rollout.created_at,
        )

    async def pause_rollout(self, version: str, created_at: float) -> bool:
        status = await self._pool.execute(
            "UPDATE rollouts SET paused = TRUE WHERE version = $1 AND created_at = $2 AND NOT paused",
            version,
            created_at,
        )
        return str(status) != "UPDATE 0"

    async def list_rollouts(self) -> list[Rollout]:
        rows = await self._pool.fetch(f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts ORDER BY created_at, version")
        return [_rollout(r) for r in rows]

    async def get_rollout(self, version: str) -> Rollout | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE version = $1", version
        )
        return None if row is None else _rollout(row)

    async def set_release_device(self, entry: ReleaseDevice) -> None:
        await self._pool.execute(
            f"INSERT INTO release_devices ({_DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (version, device_id) DO UPDATE SET state = excluded.state,"
            " reason = excluded.reason, updated_at = excluded.updated_at",
            entry.version,
            entry.device_id,
            entry.state,
            entry.reason,
            entry.updated_at,
        )

    async def list_release_devices(self, version: str) -> list[ReleaseDevice]:
        rows = await self._pool.fetch(
            f"SELECT {_DEVICE_COLUMNS} FROM release_devices WHERE version = $1 ORDER BY device_id", version
        )
        return [ReleaseDevice(*r) for r in rows]

    async def get_release_device(self, version: str, device_id: str) -> ReleaseDevice | None:
        row = await self._pool.fetchrow(
            f"SELECT {_DEVICE_COLUMNS} FROM release_devices WHERE version = $1 AND device_id = $2",
            version,
            device_id,
        )
        return None if row is None else ReleaseDevice(*row)


def _rollout(row: Sequence[Any]) -> Rollout:
    version, target, allow_downgrade, paused, created_at = row
    return Rollout(version, orjson.loads(target), allow_downgrade, paused, created_at)
