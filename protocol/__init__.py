"""Protocol v1 between agents, hub and scripts: pure data models and functions, no I/O."""

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
