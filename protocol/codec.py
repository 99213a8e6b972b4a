"""Frames to bytes and back. Decoding distinguishes bad JSON, unknown types and bad fields."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from protocol.errors import FrameValidationError, UnknownFrameError
from protocol.frames import AGENT_FRAME_TYPES, HUB_FRAME_TYPES, AgentFrame, HubFrame
from protocol.wire import parse_object  # one JSON-object parser for both codecs

M = TypeVar("M", bound=BaseModel)


def encode(frame: BaseModel) -> str:
    """Serialise a frame to the JSON text sent on the socket (``None`` fields omitted)."""
    return frame.model_dump_json(exclude_none=True)


def describe(error: ValidationError) -> str:
    """One readable line per problem: ``cpu: Input should be a valid number``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def validate(model: type[M], value: Any) -> M:
    """Validate ``value`` into ``model``, raising FrameValidationError with a readable message."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise FrameValidationError(describe(exc)) from None


def _decode(data: bytes | str, types: dict[str, Any]) -> Any:
    obj = parse_object(data)
    kind = obj.get("type")
    model = types.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise UnknownFrameError(f"unknown frame type {kind!r}; expected one of {sorted(types)}")
    return validate(model, obj)


def decode_agent_frame(data: bytes | str) -> AgentFrame:
    """Decode what an agent sent; raises a ProtocolError subclass naming the problem."""
    frame: AgentFrame = _decode(data, AGENT_FRAME_TYPES)
    return frame


def decode_hub_frame(data: bytes | str) -> HubFrame:
    """Decode what the hub sent (used by agents)."""
    frame: HubFrame = _decode(data, HUB_FRAME_TYPES)
    return frame
