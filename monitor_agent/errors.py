"""Errors the agent raises on purpose; all hang off the project's ``MonitorError`` root.

MonitorError
 +-- AgentError
      +-- ConfigError        the configuration cannot be used (also a ValueError)
      +-- TokenRejected      the hub refused our token during the handshake
      +-- CredentialRevoked  the hub closed the socket with 4001: this device's credential was revoked
      +-- EnrollmentFailed   ``POST /enroll`` did not give this device a credential
      +-- HandshakeFailed    the hub answered the hello with something other than welcome
      |    +-- DuplicateDevice  another instance of this device id is connected
      +-- HubUnreadable      the hub sent too many frames in a row the agent could not read
"""

from __future__ import annotations

from protocol.errors import MonitorError


class AgentError(MonitorError):
    """Root of the agent's own errors."""


class ConfigError(AgentError, ValueError):
    """A setting is missing, malformed or contradicts another one."""


class TokenRejected(AgentError):
    """The hub answered the WebSocket upgrade (or a REST call) with 401/403."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"hub refused the token (HTTP {status})" + (f": {detail}" if detail else ""))
        self.status = status


class CredentialRevoked(AgentError):
    """The hub closed the connection with 4001: the device's credential was revoked (or reset)."""


class EnrollmentFailed(AgentError):
    """The hub refused the enrollment (``status``: 401 bad token, 409 already enrolled) or was unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HandshakeFailed(AgentError):
    """The hub did not answer our hello with a welcome."""


class DuplicateDevice(HandshakeFailed):
    """Another agent instance holds our device id on the hub: wait ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class HubUnreadable(AgentError):
    """The connection was given up: too many hub frames in a row were unreadable."""
