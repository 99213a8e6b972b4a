"""Protocol v1 between agents, hub and scripts: pure data, pure functions and session rules, no I/O.

Names are loaded on first use (PEP 562), so an agent importing ``protocol.agent_session``
never pays for the pydantic models of the REST bodies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocol.codec import decode_agent_frame, encode
    from protocol.codes import CloseCode, ErrorCode, PresenceReason
    from protocol.commands import CommandState, is_open, transition
    from protocol.errors import (
        Conflict,
        FrameDecodeError,
        FrameValidationError,
        IllegalTransition,
        MonitorError,
        NotFound,
        ProtocolError,
        UnknownFrameError,
    )
    from protocol.frames import (
        PROTOCOL_VERSION,
        Ack,
        Acked,
        AgentFrame,
        CommandFrame,
        ErrorFrame,
        Heartbeat,
        Hello,
        HubFrame,
        Metrics,
        MetricsBatch,
        SampleFields,
        Stored,
        Welcome,
    )
    from protocol.plain import decode_hub_frame
    from protocol.rest import CommandAckBody, CommandCreate, IngestPayload, describe
    from protocol.timestamps import to_epoch, to_iso

# Public name -> the submodule that defines it.
_WHERE = {
    **dict.fromkeys(("decode_agent_frame", "encode"), "codec"),
    "decode_hub_frame": "plain",
    **dict.fromkeys(("CloseCode", "ErrorCode", "PresenceReason"), "codes"),
    **dict.fromkeys(("CommandState", "is_open", "transition"), "commands"),
    **dict.fromkeys(
        (
            "Conflict",
            "FrameDecodeError",
            "FrameValidationError",
            "IllegalTransition",
            "MonitorError",
            "NotFound",
            "ProtocolError",
            "UnknownFrameError",
        ),
        "errors",
    ),
    **dict.fromkeys(
        (
            "PROTOCOL_VERSION",
            "Ack",
            "Acked",
            "AgentFrame",
            "CommandFrame",
            "ErrorFrame",
            "Heartbeat",
            "Hello",
            "HubFrame",
            "Metrics",
            "MetricsBatch",
            "SampleFields",
            "Stored",
            "Welcome",
        ),
        "frames",
    ),
    **dict.fromkeys(("CommandAckBody", "CommandCreate", "IngestPayload", "describe"), "rest"),
    **dict.fromkeys(("to_epoch", "to_iso"), "timestamps"),
}

__all__ = [
    "PROTOCOL_VERSION",
    "Ack",
    "Acked",
    "AgentFrame",
    "CloseCode",
    "CommandAckBody",
    "CommandCreate",
    "CommandFrame",
    "CommandState",
    "Conflict",
    "ErrorCode",
    "ErrorFrame",
    "FrameDecodeError",
    "FrameValidationError",
    "Heartbeat",
    "Hello",
    "HubFrame",
    "IllegalTransition",
    "IngestPayload",
    "Metrics",
    "MetricsBatch",
    "MonitorError",
    "NotFound",
    "PresenceReason",
    "ProtocolError",
    "SampleFields",
    "Stored",
    "UnknownFrameError",
    "Welcome",
    "decode_agent_frame",
    "decode_hub_frame",
    "describe",
    "encode",
    "is_open",
    "to_epoch",
    "to_iso",
    "transition",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'protocol' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"protocol.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
