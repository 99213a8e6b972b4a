"""Plain records the store returns; the REST layer turns them into JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor_server.store.schema import TIER_FIELDS_V4
from protocol import CommandState, is_open, to_iso
from protocol.identity import Role


@dataclass(slots=True)
class Sample:
    """One metrics sample as stored: typed core columns plus everything else in ``extra``.

    Not frozen: a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    three times the cost, and every sample received is built once. Treat it as read-only.
    """

    device_id: str
    ts: float
    cpu: float | None
    ram: float | None
    disk: float | None
    uptime_sec: int | None
    status: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"cpu": self.cpu, "ram": self.ram, "disk": self.disk}
        body.update(uptime_sec=self.uptime_sec, status=self.status, **self.extra)
        return body

    def to_json(self) -> dict[str, Any]:
        return {"ts": to_iso(self.ts), **self.payload()}


@dataclass(frozen=True, slots=True)
class RemovedDevice:
    """What ``Store.delete_device`` deleted for one device (rows per table)."""

    device_id: str
    samples: int
    presence_events: int
    commands: int
    credential: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "samples": self.samples,
            "presence_events": self.presence_events,
            "commands": self.commands,
            "credential": self.credential,
        }


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    hostname: str | None
    agent_version: str | None
    platform: str | None
    status: str | None
    last_error: str | None
    first_seen: float
    last_seen: float | None
    last_payload: dict[str, Any] | None
    online: bool
    connection: str | None
    presence_reason: str | None
    presence_since: float | None
    name: str | None = None  # the display name an operator gave it
    tags: tuple[str, ...] = ()  # set by operators (dashboard, REST)
    agent_tags: tuple[str, ...] = ()  # reported by the agent in hello (its config)
    commands: tuple[str, ...] | None = None  # offered in its last hello; None: never connected (ws)
    hub_id: str | None = None  # the hub holding its session while online (several hubs, DESIGN §13)

    def all_tags(self) -> list[str]:
        return sorted({*self.tags, *self.agent_tags})

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "name": self.name,
            "tags": self.all_tags(),
            "agent_tags": list(self.agent_tags),
            "hostname": self.hostname,
            "last_seen": to_iso(self.last_seen) if self.last_seen is not None else None,
            "online": self.online,
            "last_payload": self.last_payload,
            "status": self.status,
            "agent_version": self.agent_version,
            "last_error": self.last_error,
            "platform": self.platform,
            "connection": self.connection,
            "presence_reason": self.presence_reason,
            "presence_since": _iso(self.presence_since),
            "offline_reason": None if self.online else self.presence_reason,
            "first_seen": to_iso(self.first_seen),
        }


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    device_id: str
    command: str
    args: dict[str, Any] | None
    state: CommandState
    created_at: float
    delivered_at: float | None = None
    acked_at: float | None = None
    cancelled_at: float | None = None
    success: bool | None = None
    message: str | None = None
    result: dict[str, Any] | None = None
    idempotency_key: str | None = None
    expires_at: float | None = None  # never delivered after this; ``expired`` once past it

    def is_due(self, now: float) -> bool:
        """Past its expiry and still open: to be marked ``expired``, never delivered."""
        return self.expires_at is not None and self.expires_at <= now and is_open(self.state)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "command": self.command,
            "args": self.args,
            "status": self.state.value,
            "created_at": to_iso(self.created_at),
            "delivered_at": _iso(self.delivered_at),
            "acked_at": _iso(self.acked_at),
            "cancelled_at": _iso(self.cancelled_at),
            "success": self.success,
            "message": self.message,
            "result": self.result,
            "expires_at": _iso(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    device_id: str
    online: bool
    reason: str
    connection: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "online": self.online,
            "reason": self.reason,
            "connection": self.connection,
            "at": to_iso(self.at),
        }


def _iso(epoch: float | None) -> str | None:
    return to_iso(epoch) if epoch is not None else None


# Identity (DESIGN §10). Secrets are never here: only their digests, which no JSON form includes.


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str  # Argon2id
    role: Role
    created_at: float
    changed_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role.value,
            "created_at": to_iso(self.created_at),
            "changed_at": to_iso(self.changed_at),
        }


@dataclass(frozen=True, slots=True)
class UserSession:
    """A dashboard login; the cookie holds the secret, the store its SHA-256 (``id_hash``)."""

    id_hash: str
    user: str
    created_at: float
    expires_at: float
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    owner: str
    name: str
    role: Role
    key_hash: str
    created_at: float
    expires_at: float | None = None
    revoked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "name": self.name,
            "role": self.role.value,
            "created_at": to_iso(self.created_at),
            "expires_at": _iso(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class EnrollmentToken:
    id: str
    token_hash: str
    created_by: str
    created_at: float
    expires_at: float
    max_uses: int
    uses: int = 0
    tags: tuple[str, ...] = ()
    revoked: bool = False

    def usable(self, now: float) -> bool:
        return not self.revoked and self.uses < self.max_uses and self.expires_at > now

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_by": self.created_by,
            "created_at": to_iso(self.created_at),
            "expires_at": to_iso(self.expires_at),
            "max_uses": self.max_uses,
            "uses": self.uses,
            "tags": list(self.tags),
            "revoked": self.revoked,
        }


@dataclass(frozen=True, slots=True)
class DeviceCredential:
    """A device's credential: live until revoked; a rotated one is ``pending`` until confirmed.

    A revoked row stays (so the id cannot be enrolled again) until an admin resets the device,
    which deletes it.
    """

    device_id: str
    credential_hash: str
    issued_at: float
    pending_hash: str | None = None
    rotated_at: float | None = None
    revoked: bool = False
    tags: tuple[str, ...] = ()
    enrollment_token: str | None = None  # the id of the token it was enrolled with

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "issued_at": to_iso(self.issued_at),
            "rotated_at": _iso(self.rotated_at),
            "rotation_pending": self.pending_hash is not None,
            "revoked": self.revoked,
            "tags": list(self.tags),
            "enrollment_token": self.enrollment_token,
        }


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who (``actor_kind``/``actor``) did what (``action``) to what (``target``), from where, when."""

    at: float
    actor_kind: str
    actor: str
    action: str
    target: str | None = None
    address: str | None = None
    detail: dict[str, Any] | None = None
    id: int = 0  # assigned by the store

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": to_iso(self.at),
            "actor_kind": self.actor_kind,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "address": self.address,
            "detail": self.detail,
        }


# History tiers (DESIGN §14). Every stored sample is folded into one row per device per minute and
# per hour: for each of these metrics its count, sum, minimum and maximum, so the average of any
# span of tier rows is exact (sum of sums over sum of counts), whatever the sampling interval.
ROLLUP_FIELDS: tuple[str, ...] = TIER_FIELDS_V4
"""Numeric sample fields kept in the rollups: the typed core columns, then fields of ``extra``."""


@dataclass(frozen=True, slots=True)
class Tier:
    """A rollup table: rows of ``width`` seconds, kept ``keep_days`` days."""

    name: str
    table: str
    width: int
    keep_days: float


MINUTE_TIER = Tier("minute", "rollup_minute", 60, 90.0)
HOUR_TIER = Tier("hour", "rollup_hour", 3600, 730.0)
SIX_HOUR_TIER = Tier("6h", "rollup_6h", 21600, 1830.0)  # five years: 7,300 rows per device
TIERS: tuple[Tier, ...] = (MINUTE_TIER, HOUR_TIER, SIX_HOUR_TIER)


def tier_for(step: float | None) -> Tier | None:
    """The coarsest tier whose rows fit in one bucket of ``step`` seconds; None: raw samples."""
    if step is None:
        return None
    fitting = [tier for tier in TIERS if tier.width <= step]
    return max(fitting, key=lambda tier: tier.width) if fitting else None


def tier_step(step: float) -> float:
    """The bucket width actually used for ``step``: a whole number of the serving tier's rows.

    So every tier row falls in exactly one bucket and a bucket's samples all lie inside it.
    """
    tier = tier_for(step)
    return step if tier is None else float(step // tier.width * tier.width)
