"""The audit log: who did what to what, from which address, when; kept in the store.

Every event names its actor as a principal (a user, an API key, a device, the legacy token) or,
for a failed login, the name that was tried. ``detail`` holds small facts (a role, a command
name); never a secret.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from monitor_server.identity.principals import Principal
from monitor_server.store import Store
from monitor_server.store.records import AuditEvent

ANONYMOUS = "anonymous"  # the actor kind of a failed login or an enrollment (no principal yet)
CLI = "cli"  # the actor kind of `monitor-server users ...` / `enroll-token ...` (actor: the OS user)


class AuditAction(StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    COMMAND_ENQUEUED = "command_enqueued"
    COMMAND_CANCELLED = "command_cancelled"
    CREDENTIAL_ISSUED = "credential_issued"
    CREDENTIAL_ROTATED = "credential_rotated"
    CREDENTIAL_REVOKED = "credential_revoked"
    DEVICE_RESET = "device_reset"
    DEVICE_REMOVED = "device_removed"
    DEVICE_UPDATED = "device_updated"
    BULK_COMMAND_ENQUEUED = "bulk_command_enqueued"
    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"
    USER_DELETED = "user_deleted"
    API_KEY_CREATED = "api_key_created"
    API_KEY_DELETED = "api_key_deleted"
    ENROLLMENT_TOKEN_CREATED = "enrollment_token_created"  # noqa: S105 - an action name
    ENROLLMENT_TOKEN_DELETED = "enrollment_token_deleted"  # noqa: S105 - an action name
    RELEASE_ROLLOUT = "release_rollout"  # DESIGN §12: a rollout created or replaced
    RELEASE_PUBLISHED = "release_published"  # DESIGN §12: `monitor-server releases publish`


class Audit:
    """Records events in the store; the hub's one writer of the ``audit`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(
        self,
        action: AuditAction,
        actor: Principal | str,
        target: str | None = None,
        address: str | None = None,
        detail: dict[str, Any] | None = None,
        actor_kind: str = ANONYMOUS,
    ) -> AuditEvent:
        """Store one event now. ``actor`` is a principal, or a bare name of ``actor_kind``."""
        kind, name = (actor.kind.value, actor.name) if isinstance(actor, Principal) else (actor_kind, actor)
        event = AuditEvent(time.time(), kind, name, action.value, target, address, detail)
        return await self.store.add_audit(event)

    async def recent(self, since: float | None = None, limit: int = 100) -> list[AuditEvent]:
        return await self.store.list_audit(since, limit)
