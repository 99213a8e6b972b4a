"""Request bodies of the REST API; the seed's field names are kept as they were.

The original agent's ``/ingest`` body is a sample plus its ``device_id``: it is decoded by the
same sample definition as the WebSocket frames (msgspec). The operator's bodies are small and
rare and use pydantic, which gives readable messages for humans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.codec import convert, parse_object, split_sample
from protocol.errors import FrameValidationError
from protocol.frames import DeviceId, SampleFields


class IngestPayload(SampleFields, kw_only=True, forbid_unknown_fields=True):
    """What the original HTTP agent POSTs to ``/ingest``: a flat sample naming its device."""

    device_id: DeviceId


_ingest_decoder = msgspec.json.Decoder(IngestPayload)


def parse_ingest(data: bytes) -> tuple[str, SampleFields, Mapping[str, Any]]:
    """The device, the validated sample and its unnamed fields; raises a ProtocolError."""
    try:
        payload = _ingest_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        obj = parse_object(data)
        if "device_id" not in obj:
            raise FrameValidationError("device_id: field required") from None
        device = convert(obj.pop("device_id"), DeviceId)
        fields, extra = split_sample(obj)
        return device, fields, extra
    return payload.device_id, payload, {}


def describe(error: ValidationError) -> str:
    """One readable line per problem: ``cpu: Input should be a valid number``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] | None = None


class CommandAckBody(BaseModel):
    """An acknowledgement over REST; extra fields (output, exit code...) are kept with the result."""

    model_config = ConfigDict(extra="allow")

    success: bool
    message: str = ""
