"""What the hub publishes on its bus: one typed event per kind, each built here from a store record.

Dashboards receive ``to_json()`` of each event. The JSON is the browser contract: field names
are those of the REST records, plus ``type``. A presence ``connected`` (or first ``ingest``)
event also carries what the device reported about itself, so a page need not ask
``/devices/{id}`` after every transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from monitor_server.store import Command, Device, PresenceEvent, Sample
from monitor_server.store.alert_records import AlertState
from monitor_server.store.release_records import ReleaseDevice, Rollout
from protocol import to_iso


class _Reports(Protocol):
    """What a hello says about the machine (the pydantic frame and the sans-I/O one alike)."""

    @property
    def hostname(self) -> str | None: ...
    @property
    def agent_version(self) -> str | None: ...
    @property
    def platform(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DeviceDetails:
    """What a device says about itself; ``None`` means "not reported" (the store keeps the old)."""

    hostname: str | None = None
    agent_version: str | None = None
    platform: str | None = None

    @classmethod
    def of(cls, reported: _Reports) -> DeviceDetails:
        """From a hello (or anything with those three attributes); empty strings are "not reported"."""
        return cls(reported.hostname or None, reported.agent_version or None, reported.platform or None)

    def __bool__(self) -> bool:
        return self.hostname is not None or self.agent_version is not None or self.platform is not None

    def to_json(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "agent_version": self.agent_version, "platform": self.platform}


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """A sample as received (before it is committed): ``{"type": "sample", "device_id", "ts", ...}``."""

    sample: Sample

    @classmethod
    def of(cls, sample: Sample) -> SampleEvent:
        return cls(sample)

    @property
    def device_id(self) -> str:
        return self.sample.device_id

    def to_json(self) -> dict[str, Any]:
        return {"type": "sample", "device_id": self.sample.device_id, **self.sample.to_json()}


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A stored presence transition; an online one may carry the device's reported details.

    JSON: ``{"type": "presence", "device_id", "online", "reason", "connection", "at"}`` and, when
    details are known, ``"hostname"``, ``"agent_version"``, ``"platform"`` (each possibly null).
    """

    change: PresenceEvent
    details: DeviceDetails | None = None

    @classmethod
    def of(cls, change: PresenceEvent, details: DeviceDetails | None = None) -> PresenceChanged:
        """Details that report nothing are left out: the page then knows it must ask."""
        return cls(change, details if details else None)

    @property
    def device_id(self) -> str:
        return self.change.device_id

    def to_json(self) -> dict[str, Any]:
        body = {"type": "presence", **self.change.to_json()}
        if self.details is not None:
            body.update(self.details.to_json())
        return body


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A command created or changed state: ``{"type": "command", "id", "device_id", "status", ...}``."""

    command: Command

    @classmethod
    def of(cls, command: Command) -> CommandEvent:
        return cls(command)

    @property
    def device_id(self) -> str:
        return self.command.device_id

    def to_json(self) -> dict[str, Any]:
        return {"type": "command", **self.command.to_json()}


@dataclass(frozen=True, slots=True)
class DeviceRemoved:
    """An admin removed the device and its history: ``{"type": "device_removed", "device_id"}``."""

    device_id: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "device_removed", "device_id": self.device_id}


@dataclass(frozen=True, slots=True)
class DeviceUpdated:
    """An operator renamed or tagged the device: ``{"type": "device", **the device's REST record}``."""

    device: Device

    @property
    def device_id(self) -> str:
        return self.device.device_id

    def to_json(self) -> dict[str, Any]:
        return {"type": "device", **self.device.to_json()}


@dataclass(frozen=True, slots=True)
class AlertChanged:
    """A stored alert transition (pending, firing or ok), as ``GET /alerts`` lists an alert.

    JSON: ``{"type": "alert", "rule_id", "rule", "severity", "kind", "device_id", "state",
    "silenced", "since", "fired_at", "value"}``; ``state`` "ok" means resolved (or never fired).
    """

    state: AlertState
    rule: str
    severity: str
    kind: str
    silenced: bool

    @property
    def device_id(self) -> str:
        return self.state.device_id

    def record(self) -> dict[str, Any]:
        """The alert as ``GET /alerts`` gives it (without ``type``)."""
        state = self.state
        return {
            "rule_id": state.rule_id,
            "rule": self.rule,
            "severity": self.severity,
            "kind": self.kind,
            "device_id": state.device_id,
            "state": state.state,
            "silenced": self.silenced,
            "since": to_iso(state.since),
            "fired_at": to_iso(state.fired_at) if state.fired_at is not None else None,
            "value": state.value,
        }

    def to_json(self) -> dict[str, Any]:
        return {"type": "alert", **self.record()}


@dataclass(frozen=True, slots=True)
class ReleaseProgress:
    """A device's stored state with a release (offered, downloading, installed, failed, rolled_back).

    JSON: ``{"type": "release", "version", "device_id", "state", "reason", "updated_at"}``, a device
    entry of ``GET /releases/{version}`` plus the version.
    """

    entry: ReleaseDevice

    @property
    def device_id(self) -> str:
        return self.entry.device_id

    def to_json(self) -> dict[str, Any]:
        return {"type": "release", "version": self.entry.version, **self.entry.to_json()}


@dataclass(frozen=True, slots=True)
class RolloutChanged:
    """A rollout saved or paused: ``{"type": "rollout", "version", "target", "allow_downgrade",
    "paused", "created_at"}`` (the ``rollout`` of ``GET /releases``). Each hub publishes it itself
    when it reloads the rollout (the ``rollout`` notice), so it is not relayed."""

    rollout: Rollout
    device_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": "rollout", **self.rollout.to_json()}


@dataclass(frozen=True, slots=True)
class Relayed:
    """An event another hub published (several hubs, DESIGN §13), passed on to this hub's dashboards.

    ``body`` is that event's ``to_json()`` as the other hub built it.
    """

    device_id: str
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.body


HubEvent = (
    SampleEvent
    | PresenceChanged
    | CommandEvent
    | DeviceRemoved
    | DeviceUpdated
    | AlertChanged
    | ReleaseProgress
    | RolloutChanged
    | Relayed
)
