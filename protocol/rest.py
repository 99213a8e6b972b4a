"""Request bodies of the REST API; the seed's field names are kept as they were."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from protocol.frames import DeviceId, SampleFields


class IngestPayload(SampleFields):
    """What the original HTTP agent POSTs to ``/ingest``: a flat sample naming its device."""

    device_id: DeviceId


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=128)
    args: dict[str, Any] | None = None


class CommandAckBody(BaseModel):
    """An acknowledgement over REST; extra fields (output, exit code...) are kept with the result."""

    model_config = ConfigDict(extra="allow")

    success: bool
    message: str = ""
