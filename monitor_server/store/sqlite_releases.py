"""The release tables on SQLite (DESIGN §12): a mixin of ``SQLiteStore``, which gives it ``_tx``
and ``_fetch`` (a migration in ``schema.py`` creates the tables)."""

# ruff: noqa: S608 (SQL assembled from module constants and "?" placeholders only)
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite
import orjson

from monitor_server.store.release_records import Release, ReleaseDevice, Rollout, release_of, release_row
from protocol.errors import Conflict

RELEASES_DDL = """
CREATE TABLE releases (
    version    TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL,
    signature  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    manifest   TEXT NOT NULL,
    bundle     BLOB NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE rollouts (
    version         TEXT PRIMARY KEY,
    target          TEXT NOT NULL,
    allow_downgrade INTEGER NOT NULL,
    paused          INTEGER NOT NULL,
    created_at      REAL NOT NULL
);
CREATE TABLE release_devices (
    version    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (version, device_id)
) WITHOUT ROWID;
"""

_RELEASE_COLUMNS = "version, sha256, signature, size, manifest, created_at, created_by"
_ROLLOUT_COLUMNS = "version, target, allow_downgrade, paused, created_at"
_DEVICE_COLUMNS = "version, device_id, state, reason, updated_at"


class SQLiteReleases:
    """Every release method of the ``Store`` protocol on SQLite."""

    def _tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError  # SQLiteStore's

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        raise NotImplementedError  # SQLiteStore's

    async def create_release(self, release: Release, bundle: bytes) -> None:
        async with self._tx() as db:
            async with db.execute("SELECT 1 FROM releases WHERE version = ?", (release.version,)) as cur:
                if await cur.fetchone() is not None:
                    raise Conflict(f"release {release.version} is already published")
            await db.execute(
                f"INSERT INTO releases ({_RELEASE_COLUMNS}, bundle) VALUES (?,?,?,?,?,?,?,?)",
                (*release_row(release), bundle),
            )

    async def list_releases(self) -> list[Release]:
        rows = await self._fetch(f"SELECT {_RELEASE_COLUMNS} FROM releases ORDER BY created_at, version")
        return [release_of(r) for r in rows]

    async def get_release(self, version: str) -> Release | None:
        rows = await self._fetch(f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE version = ?", (version,))
        return release_of(rows[0]) if rows else None

    async def release_bundle(self, version: str) -> bytes | None:
        rows = await self._fetch("SELECT bundle FROM releases WHERE version = ?", (version,))
        return bytes(rows[0][0]) if rows else None

    async def save_rollout(self, rollout: Rollout) -> None:
        async with self._tx() as db:
            await db.execute(
                f"INSERT INTO rollouts ({_ROLLOUT_COLUMNS}) VALUES (?,?,?,?,?)"
                " ON CONFLICT (version) DO UPDATE SET target = excluded.target,"
                " allow_downgrade = excluded.allow_downgrade,"
                " paused = excluded.paused, created_at = excluded.created_at",
                _rollout_row(rollout),
            )

    async def pause_rollout(self, version: str, created_at: float) -> bool:
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE rollouts SET paused = 1 WHERE version = ? AND created_at = ? AND paused = 0",
                (version, created_at),
            )
            return cur.rowcount > 0

    async def list_rollouts(self) -> list[Rollout]:
        rows = await self._fetch(f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts ORDER BY created_at, version")
        return [_rollout(r) for r in rows]

    async def get_rollout(self, version: str) -> Rollout | None:
        rows = await self._fetch(f"SELECT {_ROLLOUT_COLUMNS} FROM rollouts WHERE version = ?", (version,))
        return _rollout(rows[0]) if rows else None

    async def set_release_device(self, entry: ReleaseDevice) -> None:
        async with self._tx() as db:
            await db.execute(
                f"INSERT INTO release_devices ({_DEVICE_COLUMNS}) VALUES (?,?,?,?,?)"
                " ON CONFLICT (version, device_id) DO UPDATE SET state = excluded.state,"
                " reason = excluded.reason, updated_at = excluded.updated_at",
                (entry.version, entry.device_id, entry.state, entry.reason, entry.updated_at),
            )

    async def list_release_devices(self, version: str) -> list[ReleaseDevice]:
        rows = await self._fetch(
            f"SELECT {_DEVICE_COLUMNS} FROM release_devices WHERE version = ? ORDER BY device_id", (version,)
        )
        return [ReleaseDevice(*r) for r in rows]

    async def get_release_device(self, version: str, device_id: str) -> ReleaseDevice | None:
        rows = await self._fetch(
            f"SELECT {_DEVICE_COLUMNS} FROM release_devices WHERE version = ? AND device_id = ?",
            (version, device_id),
        )
        return ReleaseDevice(*rows[0]) if rows else None


def _rollout_row(rollout: Rollout) -> tuple[Any, ...]:
    return (
        rollout.version,
        orjson.dumps(rollout.target).decode(),
        int(rollout.allow_downgrade),
        int(rollout.paused),
        rollout.created_at,
    )


def _rollout(row: Sequence[Any]) -> Rollout:
    version, target, allow_downgrade, paused, created_at = row
    return Rollout(version, orjson.loads(target), bool(allow_downgrade), bool(paused), created_at)
