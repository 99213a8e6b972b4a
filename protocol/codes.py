"""Every code two peers exchange, defined once: WebSocket close codes, error codes, presence reasons."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """Why a socket of ``/ws/agent`` was closed (RFC 6455 codes, plus ours from 4000)."""

    NORMAL = 1000  # the agent is shutting down
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007  # a text frame that is not UTF-8
    POLICY = 1008  # no or bad hello, or too many refused frames in a row
    TOO_BIG = 1009  # a frame over ``max_frame_bytes``
    TIMEOUT = 1011  # keepalive or idle timeout (uvicorn's keepalive reports 1011 too)
    SERVICE_RESTART = 1012  # the closing side is restarting: reconnect with backoff
    OVERLOADED = 1013  # the agent did not read fast enough: reconnect
    REPLACED = 4000  # a newer connection of the same device took over
    REVOKED = 4001  # the device's credential was revoked: do not reconnect with it
    DUPLICATE = 4002  # another agent instance holds this device id: back off for long
    FORBIDDEN = 4003  # the credential belongs to another device than the hello names
    REMOVED = 4004  # an admin removed the device and its history (``DELETE /devices/{id}``)


class UiCloseCode(IntEnum):
    """Why the hub closed a dashboard's ``/ws/ui`` socket (``static/js/live.js`` knows them too)."""

    TOO_SLOW = 1013  # "try again later": the page reconnects and resynchronises
    SESSION_ENDED = 4401  # the page reloads and shows the login form


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` frame."""

    INVALID_JSON = "invalid_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FRAME = "invalid_frame"
    INVALID_SAMPLE = "invalid_sample"  # one sample refused (its ``seq`` is named); the rest stored
    UNKNOWN_COMMAND = "unknown_command"
    UNEXPECTED_FRAME = "unexpected_frame"
    HELLO_REQUIRED = "hello_required"
    HELLO_TIMEOUT = "hello_timeout"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    DUPLICATE_DEVICE = "duplicate_device"
    FORBIDDEN = "forbidden"  # a device credential used for another device
    PROTOCOL_ERROR = "protocol_error"


class PresenceReason(StrEnum):
    """Why a device went online or offline (stored with every transition)."""

    CONNECTED = "connected"
    INGEST = "ingest"
    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"
    AGENT_RESTART = "agent_restart"  # the agent closed with 1012: it is re-executing itself
    HUB_SHUTDOWN = "hub_shutdown"
    HUB_RESTART = "hub_restart"
    HUB_LOST = "hub_lost"  # its hub stopped heartbeating; a surviving hub marked it (DESIGN §13)
    OVERLOADED = "overloaded"


class Capability(StrEnum):
    """Protocol features an agent announces in ``hello.capabilities`` (beside its command names)."""

    STORED_ACKS = "stored_acks"  # number samples with ``seq``; the hub answers ``stored``
    UPDATES = "updates"  # runs under the update launcher: the hub may send ``update`` frames


def offered_commands(capabilities: Iterable[str]) -> list[str]:
    """The command names among a hello's capabilities (protocol features left out), sorted."""
    features = {feature.value for feature in Capability}
    return sorted({name for name in capabilities if name not in features})
