"""Protocol v1 between agents, hub and scripts: pure data models and functions, no I/O.

Names are loaded on first use (PEP 562), so ``import protocol.wire`` (the agent's
pydantic-free codec) does not pay for the pydantic models the hub uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocol.codec import decode_agent_frame, decode_hub_frame, describe, encode
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
        Welcome,
    )
    from protocol.rest import CommandAckBody, CommandCreate, IngestPayload
    from protocol.timestamps import to_epoch, to_iso

# Public name -> the submodule that defines it.
_WHERE = {
    **dict.fromkeys(("decode_agent_frame", "decode_hub_frame", "describe", "encode"), "codec"),
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
            "Welcome",
        ),
        "frames",
    ),
    **dict.fromkeys(("CommandAckBody", "CommandCreate", "IngestPayload"), "rest"),
    **dict.fromkeys(("to_epoch", "to_iso"), "timestamps"),
}

__all__ = [
    "PROTOCOL_VERSION",
    "Ack",
    "Acked",
    "AgentFrame",
    "CommandAckBody",
    "CommandCreate",
    "CommandFrame",
    "CommandState",
    "Conflict",
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
    "ProtocolError",
    "SampleFields",
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
