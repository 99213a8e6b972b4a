"""Who is calling: a ``Principal`` (device, user, API key or the legacy fleet token) and its role."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.identity import Role

__all__ = ["LEGACY", "Principal", "PrincipalKind", "Role"]


class PrincipalKind(StrEnum):
    DEVICE = "device"  # a device credential: only its own device's socket, ingest, next and ack
    USER = "user"  # a dashboard session
    API_KEY = "api_key"  # a user's key for scripts, role at most the user's
    LEGACY = "legacy"  # the shared fleet token (MONITOR_TOKEN): admin, as in the seed


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``name`` is what the audit log shows as the actor.

    ``user`` is the account it acts for (users and API keys), ``device_id`` the device a
    device credential belongs to, ``key_id`` the API key's id. A device has no role over the
    REST API: ``role`` is ``None`` and only its own device's routes admit it.
    """

    kind: PrincipalKind
    name: str
    role: Role | None
    device_id: str | None = None
    user: str | None = None
    key_id: str | None = None

    def may(self, role: Role) -> bool:
        """Whether this principal's role is at least ``role`` (a device's never is)."""
        return self.role is not None and self.role.at_least(role)

    def to_json(self) -> dict[str, str | None]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "role": self.role.value if self.role else None,
            "device_id": self.device_id,
            "user": self.user,
        }

    @classmethod
    def device(cls, device_id: str) -> Principal:
        return cls(PrincipalKind.DEVICE, device_id, None, device_id=device_id)

    @classmethod
    def of_user(cls, name: str, role: Role) -> Principal:
        return cls(PrincipalKind.USER, name, role, user=name)


LEGACY = Principal(PrincipalKind.LEGACY, "legacy-token", Role.ADMIN)
