"""Every frame of protocol version 1, defined once for the hub and the agent (docs/protocol.md).

msgspec ``Struct`` types: decoding and validating a typical sample costs about 2.4 us against
11 us with pydantic models, and importing msgspec costs the agent 1.2 MiB more than orjson
alone (the measurements are in docs/benchmarks.md). Bounds are what the store can hold:
integers fit signed 64 bits, floats are finite, strings have a length limit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from protocol.timestamps import check_timestamp

PROTOCOL_VERSION = 1
MAX_BATCH = 1000

Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Finite = Annotated[float, Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]
Seq = Annotated[int, Meta(ge=0, le=2**63 - 1)]
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
DeviceId = Annotated[str, Meta(pattern=DEVICE_ID_PATTERN)]
Name = Annotated[str, Meta(max_length=255)]
Text = Annotated[str, Meta(max_length=65536)]
CommandName = Annotated[str, Meta(min_length=1, max_length=128)]


class _Frame(Struct, kw_only=True, omit_defaults=True, tag_field="type"):
    """Frames carry their ``type`` as the tag; fields left at their default are not sent."""


class SampleFields(Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """One metrics sample: the seed's flat fields plus the richer optional ones.

    Fields this version does not name are kept by the codec beside the struct (``extra``);
    ``forbid_unknown_fields`` only sends such samples down the slower path that collects them.
    """

    ts: float | str | None = None
    hostname: Name | None = None
    cpu: Finite | None = None
    ram: Finite | None = None
    disk: Finite | None = None
    uptime_sec: Int64 | None = None
    agent_version: Name | None = None
    status: Literal["ok", "error"] | None = None
    last_error: Text | None = None
    load_1: Finite | None = None
    load_5: Finite | None = None
    load_15: Finite | None = None
    mem_used: Int64 | None = None
    mem_total: Int64 | None = None
    swap_used: Int64 | None = None
    swap_total: Int64 | None = None
    disk_used: Int64 | None = None
    disk_total: Int64 | None = None
    disk_read_bps: Finite | None = None
    disk_write_bps: Finite | None = None
    net_rx_bps: Finite | None = None
    net_tx_bps: Finite | None = None
    procs: Int64 | None = None
    temp_max: Finite | None = None
    spool_dropped: Int64 | None = None
    agent_rss: Int64 | None = None
    agent_cpu_sec: Finite | None = None

    def __post_init__(self) -> None:
        if self.ts is not None:
            try:
                check_timestamp(self.ts)
            except ValueError as exc:  # msgspec reports it as a ValidationError
                raise ValueError(f"ts: {exc}, got {self.ts!r:.40}") from None


SAMPLE_FIELDS = frozenset(SampleFields.__struct_fields__)


# Agent -> hub


class Hello(_Frame, tag="hello", kw_only=True):
    protocol: int
    device_id: DeviceId
    agent_version: Name = ""
    hostname: Name = ""
    platform: Name = ""
    capabilities: Annotated[list[Name], Meta(max_length=256)] = []
    # Generated at the agent's first start and kept in its state folder: two machines cloned
    # with the same device id still differ here, so the hub can tell them apart.
    instance_id: Annotated[str, Meta(max_length=64)] = ""


class Metrics(SampleFields, tag="metrics", tag_field="type", kw_only=True):
    """One live sample; ``seq`` numbers it when the agent asked for ``stored`` acks."""

    seq: Seq | None = None


class MetricsBatch(_Frame, tag="metrics_batch", kw_only=True, forbid_unknown_fields=True):
    """Many samples at once (a spool replay); sample ``i`` has sequence number ``seq + i``."""

    samples: Annotated[list[SampleFields], Meta(max_length=MAX_BATCH)]
    seq: Seq | None = None


class Ack(_Frame, tag="ack", kw_only=True, forbid_unknown_fields=True):
    """The agent's result for a command; other fields (output, exit code...) are kept by the codec."""

    id: Int64
    success: bool
    message: Text = ""


class Heartbeat(_Frame, tag="heartbeat", kw_only=True):
    """Sent when the agent has nothing else to say within the heartbeat interval."""


class CredentialSaved(_Frame, tag="credential_saved", kw_only=True, forbid_unknown_fields=True):
    """The credential of the last ``credential`` frame is stored durably: the hub may retire the old one."""


AgentFrame = Hello | Metrics | MetricsBatch | Ack | Heartbeat | CredentialSaved
AGENT_FRAME_TYPES: dict[str, type[AgentFrame]] = {
    "hello": Hello,
    "metrics": Metrics,
    "metrics_batch": MetricsBatch,
    "ack": Ack,
    "heartbeat": Heartbeat,
    "credential_saved": CredentialSaved,
}


# Hub -> agent


class Welcome(_Frame, tag="welcome", kw_only=True):
    protocol: int
    device_id: str
    heartbeat_interval: float
    ping_interval: float
    ping_timeout: float
    max_frame_bytes: int
    server_time: str


class CommandFrame(_Frame, tag="command", kw_only=True):
    id: int
    command: str
    args: dict[str, Any] | None = None
    created_at: str


class Acked(_Frame, tag="acked", kw_only=True):
    id: int


class Stored(_Frame, tag="stored", kw_only=True):
    """Every sample this connection sent with a ``seq`` up to and including this one is committed."""

    seq: int


class ErrorFrame(_Frame, tag="error", kw_only=True):
    code: str
    message: str
    id: int | None = None  # the command an ``unknown_command`` error is about
    seq: int | None = None  # the sample an ``invalid_sample`` error is about
    retry_after: float | None = None  # seconds to wait before connecting again (``duplicate_device``)


class CredentialFrame(_Frame, tag="credential", kw_only=True):
    """Rotation: this device's new credential. Store it durably, then answer ``credential_saved``.

    The old credential keeps working until the hub has that answer, so an agent that dies
    before it saved the new one is never locked out.
    """

    credential: Annotated[str, Meta(min_length=1, max_length=512)]


HubFrame = Welcome | CommandFrame | Acked | Stored | ErrorFrame | CredentialFrame
HUB_FRAME_TYPES: dict[str, type[HubFrame]] = {
    "welcome": Welcome,
    "command": CommandFrame,
    "acked": Acked,
    "stored": Stored,
    "error": ErrorFrame,
    "credential": CredentialFrame,
}
