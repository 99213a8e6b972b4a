"""Which socket holds each device: one live ``AgentSocket`` per device id.

Nothing ever awaits a socket on behalf of another: a push only queues the frame on that
socket, whose own writer sends it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor_server.identity.events import DeviceRevoked, IdentityEvent
from monitor_server.identity.principals import PrincipalKind
from monitor_server.store import Command
from protocol.codes import CloseCode
from protocol.timestamps import to_iso

if TYPE_CHECKING:
    from monitor_server.agent_socket import AgentSocket


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A second agent instance that claimed a device id held by a live one (and was refused)."""

    instance_id: str
    held_by: str
    address: str
    at: float
    refused: int  # how many times, since the hub started

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "held_by": self.held_by,
            "address": self.address,
            "at": to_iso(self.at),
            "refused": self.refused,
        }


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, AgentSocket] = {}
        self._duplicates: dict[str, Duplicate] = {}

    def holder_conflicts(self, device_id: str, instance_id: str) -> AgentSocket | None:
        """The live socket of another agent instance holding ``device_id``, if any.

        Instances are compared only when both said who they are: an agent without an
        instance id (an older version) replaces the connection as before.
        """
        current = self._sessions.get(device_id)
        if current is None or not instance_id or not current.instance_id:
            return None
        return current if current.instance_id != instance_id and current.close_code is None else None

    def note_duplicate(self, device_id: str, instance_id: str, held_by: str, address: str) -> Duplicate:
        before = self._duplicates.get(device_id)
        refused = before.refused + 1 if before is not None else 1
        found = Duplicate(instance_id, held_by, address, time.time(), refused)
        self._duplicates[device_id] = found
        return found

    def with_duplicate(self, device: dict[str, Any]) -> dict[str, Any]:
        """Add ``duplicate`` to a device's JSON: the last instance refused for its id, or null."""
        found = self._duplicates.get(device["device_id"])
        device["duplicate"] = found.to_json() if found is not None else None
        return device

    def register(self, socket: AgentSocket) -> AgentSocket | None:
        """Make ``socket`` current for its device; return the one it replaces, if any."""
        previous = self._sessions.get(socket.device_id)
        self._sessions[socket.device_id] = socket
        return previous

    def unregister(self, socket: AgentSocket) -> bool:
        """Forget ``socket`` if it is still current; False when it was replaced."""
        if self._sessions.get(socket.device_id) is not socket:
            return False
        del self._sessions[socket.device_id]
        return True

    def on_identity_event(self, event: IdentityEvent) -> None:
        """A revoked (or reset) device's live socket closes with 4001 now (``IdentityListeners``).

        Only a socket opened with that device's credential: one opened with the legacy token or
        an API key is not what was revoked.
        """
        if not isinstance(event, DeviceRevoked):
            return
        socket = self._sessions.get(event.device_id)
        principal = socket.principal if socket is not None else None
        if socket is None or principal is None or principal.kind is not PrincipalKind.DEVICE:
            return
        socket.abort(CloseCode.REVOKED, "credential reset" if event.reset else "credential revoked")

    def forget(self, device_id: str) -> AgentSocket | None:
        """A removed device: drop its refused-duplicate note; return its live socket, if any."""
        self._duplicates.pop(device_id, None)
        return self._sessions.get(device_id)

    def get(self, device_id: str) -> AgentSocket | None:
        return self._sessions.get(device_id)

    def push(self, command: Command) -> bool:
        socket = self._sessions.get(command.device_id)
        if socket is None:
            return False
        socket.push(command)
        return True

    def sockets(self) -> list[AgentSocket]:
        return list(self._sessions.values())

    def device_ids(self) -> list[str]:
        return list(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._sessions
