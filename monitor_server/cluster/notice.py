"""What one hub tells the others (DESIGN §13): a notice is a kind, a device id and a small JSON body.

Notices are rows of the ``hub_events`` table; NOTIFY carries only their ids. Events of the hub's
bus and identity events are turned into notices here, and back into what the receiving hub acts on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor_server.events import (
    AlertChanged,
    CommandEvent,
    DeviceRemoved,
    DeviceUpdated,
    HubEvent,
    PresenceChanged,
    ReleaseProgress,
)
from monitor_server.identity.events import CredentialsChanged, DeviceRevoked, IdentityEvent, SessionsEnded


class Kind:
    PRESENCE = "presence"
    COMMAND = "command"
    DEVICE = "device"
    DEVICE_REMOVED = "device_removed"
    SAMPLES = "samples"
    IDENTITY = "identity"
    ALERT = "alert"  # an alert transition: other hubs' dashboards show it (relayed as is)
    RELEASE = "release"  # a device's progress with a release: other hubs' dashboards show it
    ROLLOUT = "rollout"  # a release rollout saved: offer it to the agents held here (DESIGN §12)
    # alert rules, notifiers or silences changed (body ``{"what": "rules"}``...): read them again now
    ALERT_CONFIG = "alert_config"


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str
    device_id: str | None
    body: dict[str, Any]
    hub_id: str = ""
    id: int = 0

    def body_text(self) -> str:
        return json.dumps(self.body, separators=(",", ":"))


_BUS_KINDS: dict[type, str] = {
    PresenceChanged: Kind.PRESENCE,
    CommandEvent: Kind.COMMAND,
    DeviceUpdated: Kind.DEVICE,
    DeviceRemoved: Kind.DEVICE_REMOVED,
    AlertChanged: Kind.ALERT,
    ReleaseProgress: Kind.RELEASE,
}


def of_bus_event(event: HubEvent) -> Notice | None:
    """The notice for a dashboard event other hubs must see; None for samples (sent coalesced)."""
    kind = _BUS_KINDS.get(type(event))
    if kind is None:
        return None
    return Notice(kind, event.device_id, event.to_json())


def of_identity_event(event: IdentityEvent) -> Notice:
    if isinstance(event, DeviceRevoked):
        body: dict[str, Any] = {"event": "device_revoked", "device_id": event.device_id, "reset": event.reset}
        return Notice(Kind.IDENTITY, event.device_id, body)
    if isinstance(event, SessionsEnded):
        body = {"event": "sessions_ended", "user": event.user, "session_hash": event.session_hash}
        return Notice(Kind.IDENTITY, None, body)
    body = {"event": "credentials_changed", "user": event.user, "key_id": event.key_id}
    return Notice(Kind.IDENTITY, None, body)


def identity_event(body: dict[str, Any]) -> IdentityEvent | None:
    """The identity event a notice body describes (None: not one this hub knows)."""
    match body.get("event"):
        case "device_revoked":
            return DeviceRevoked(str(body["device_id"]), bool(body.get("reset")))
        case "sessions_ended":
            return SessionsEnded(body.get("user"), body.get("session_hash"))
        case "credentials_changed":
            return CredentialsChanged(body.get("user"), body.get("key_id"))
    return None


def samples_notice(latest: dict[str, dict[str, Any]]) -> Notice:
    """The newest sample of each device that sent one since the last notice (at most one a second)."""
    return Notice(Kind.SAMPLES, None, {"samples": latest})
