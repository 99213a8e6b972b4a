"""The exception tree shared by the hub and the agent.

MonitorError
 +-- ProtocolError              a frame or body the other side must not send
 |    +-- FrameDecodeError      not JSON, or not an object (also a ValueError)
 |    +-- UnknownFrameError     a ``type`` this protocol version does not define
 |    +-- FrameValidationError  right type, wrong fields (also a ValueError)
 +-- IllegalTransition          a command state change the lifecycle forbids (also a ValueError)
 +-- NotFound                   a device or command that does not exist (also a LookupError)
 +-- Conflict                   a request that contradicts stored state
 +-- Unauthenticated            no valid credential was presented (also a PermissionError)
 +-- Forbidden                  a valid credential that may not do this (also a PermissionError)
"""

from __future__ import annotations

from protocol.codes import ErrorCode


class MonitorError(Exception):
    """Root of every error this project raises on purpose."""


class ProtocolError(MonitorError):
    """A peer sent something the protocol does not allow; ``code`` goes into the error frame."""

    code: ErrorCode = ErrorCode.PROTOCOL_ERROR


class FrameDecodeError(ProtocolError, ValueError):
    code = ErrorCode.INVALID_JSON


class UnknownFrameError(ProtocolError):
    code = ErrorCode.UNKNOWN_TYPE


class FrameValidationError(ProtocolError, ValueError):
    code = ErrorCode.INVALID_FRAME


class IllegalTransition(MonitorError, ValueError):
    """A command cannot move from its current state to the requested one."""


class NotFound(MonitorError, LookupError):
    """The device or command named does not exist."""


class Conflict(MonitorError):
    """The request contradicts stored state (e.g. cancelling an acknowledged command)."""


class Unauthenticated(MonitorError, PermissionError):
    """No valid credential: a wrong, expired, revoked or used-up secret (HTTP 401)."""


class Forbidden(MonitorError, PermissionError):
    """The credential is valid but its role or device does not allow this (HTTP 403)."""
