"""Records of the release tables (DESIGN §12): releases, their rollouts and each device's progress.
Both store backends return exactly these."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from protocol import to_iso


class DeviceUpdateState(StrEnum):
    """Where one device is with one release, as the hub last heard."""

    OFFERED = "offered"
    DOWNLOADING = "downloading"
    INSTALLED = "installed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class Release:
    """A published bundle's description (the bytes are read apart: ``Store.release_bundle``)."""

    version: str
    sha256: str
    signature: str
    size: int
    manifest: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    created_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "signature": self.signature,
            "size": self.size,
            "manifest": self.manifest,
            "created_at": to_iso(self.created_at),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class Rollout:
    """Which devices a release is offered to: ``target`` is ``{"percent": n}``, ``{"devices": [..]}``
    or ``{"tags": [..]}``. One rollout per version; a new one replaces it."""

    version: str
    target: dict[str, Any]
    allow_downgrade: bool = False
    paused: bool = False
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "target": self.target,
            "allow_downgrade": self.allow_downgrade,
            "paused": self.paused,
            "created_at": to_iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class ReleaseDevice:
    """One device's progress with one release."""

    version: str
    device_id: str
    state: str
    reason: str = ""
    updated_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "state": self.state,
            "reason": self.reason,
            "updated_at": to_iso(self.updated_at),
        }


def release_row(release: Release) -> tuple[Any, ...]:
    return (
        release.version,
        release.sha256,
        release.signature,
        release.size,
        orjson.dumps(release.manifest).decode(),
        release.created_at,
        release.created_by,
    )


def release_of(row: Any) -> Release:
    """From a stored row (SQLite or PostgreSQL)."""
    return Release(row[0], row[1], row[2], row[3], orjson.loads(row[4]), row[5], row[6])
