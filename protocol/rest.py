"""Request bodies of the REST API; the seed's field names are kept as they were.

The original agent's ``/ingest`` body is a sample plus its ``device_id``: it is decoded by the
same sample definition as the WebSocket frames (msgspec). The operator's bodies are small and
rare and use pydantic, which gives readable messages for humans.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

import msgspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from protocol.codec import convert, hint_of, parse_object, split_sample, struct_of
from protocol.errors import FrameValidationError
from protocol.frames import DEVICE_ID_PATTERN, MAX_TAGS, TAG_PATTERN, DeviceId, SampleFields
from protocol.timestamps import check_timestamp, to_epoch

# What the original HTTP agent POSTs to ``/ingest``: a flat sample naming its device.
IngestPayload = msgspec.defstruct(
    "IngestPayload",
    [("device_id", hint_of(DeviceId))],
    bases=(struct_of(SampleFields, tagged=False),),
    module=__name__,
    kw_only=True,
    forbid_unknown_fields=True,
)
_ingest_decoder = msgspec.json.Decoder(IngestPayload)


def parse_ingest(data: bytes) -> tuple[str, dict[str, Any], Mapping[str, Any]]:
    """The device, the validated sample's named fields and its other fields; raises a ProtocolError."""
    try:
        payload = _ingest_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        obj = parse_object(data)
        if "device_id" not in obj:
            raise FrameValidationError("device_id: field required") from None
        device: str = convert(obj.pop("device_id"), DeviceId)
        named, extra = split_sample(obj)
        return device, named, extra
    values = msgspec.structs.asdict(payload)
    return values.pop("device_id"), values, {}


def describe(error: ValidationError) -> str:
    """One readable line per problem: ``cpu: Input should be a valid number``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


MAX_TTL = 100 * 365 * 86400.0  # seconds: a century, so every expiry has an ISO-8601 form


class CommandCreate(BaseModel):
    """An operator's command; ``ttl`` or ``expires_at`` (not both) bounds how long it may wait."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] | None = None
    ttl: float | None = Field(
        None,
        gt=0,
        le=MAX_TTL,
        allow_inf_nan=False,
        strict=True,  # a number: neither true nor "5"
        description="seconds from now after which the command is never delivered (it becomes expired)",
    )
    expires_at: StrictFloat | StrictStr | None = Field(
        None,
        description="when the command expires if not delivered by then: ISO-8601 or epoch seconds",
    )

    @field_validator("expires_at")
    @classmethod
    def _a_time(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str) and _is_number(value):
            value = float(value)  # epoch seconds written as a string
        if value is not None:
            check_timestamp(value)  # ValueError: not a time, or not between 1970 and 2100
        return value

    @model_validator(mode="after")
    def _one_expiry(self) -> Self:
        if self.ttl is not None and self.expires_at is not None:
            raise ValueError("give ttl or expires_at, not both")
        return self

    def expires_epoch(self) -> float | None:
        """``expires_at`` in epoch seconds (``ttl`` is relative: the hub adds it to its clock)."""
        return None if self.expires_at is None else to_epoch(self.expires_at)


MAX_BULK = 10_000  # devices one bulk command may address
TagText = Annotated[str, Field(pattern=TAG_PATTERN)]


class BulkCommandCreate(CommandCreate):
    """One command for many devices: the ``devices`` listed, or every device with ``tag``."""

    devices: list[Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]] | None = Field(
        None, min_length=1, max_length=MAX_BULK
    )
    tag: TagText | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.devices is None) == (self.tag is None):
            raise ValueError("give devices or tag, one of them")
        return self


class DeviceUpdate(BaseModel):
    """What an operator may change on a device: its display name and its tags."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=128, description='display name; "" or null clears it')
    tags: list[TagText] | None = Field(
        None, max_length=MAX_TAGS, description="the tags operators set (the agent's own stay)"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class CommandAckBody(BaseModel):
    """An acknowledgement over REST; extra fields (output, exit code...) are kept with the result."""

    model_config = ConfigDict(extra="allow")

    success: bool
    message: str = ""
