"""Every frame of protocol version 1, defined once for the hub and the agent (docs/protocol.md).

Plain dataclasses with their bounds as ``Limit`` markers, so an agent imports nothing past the
standard library to build, check and read frames (``protocol.plain``). The hub decodes the
same definitions through msgspec structs generated from them (``protocol.codec``): a typical
sample costs about 2.4 us there against 11 us with pydantic models, and the agent saves the
1.3 MiB msgspec would cost it (docs/benchmarks.md). Bounds are what the store can hold:
integers fit signed 64 bits, floats are finite, strings have a length limit.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Annotated, Any, ClassVar, Literal

from protocol.timestamps import check_timestamp

PROTOCOL_VERSION = 1
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Limit:
    """Bounds of a field, read by both validators (msgspec ``Meta`` on the hub, ``plain`` on agents)."""

    ge: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None


_FLOAT_MAX = 1.7976931348623157e308
Int64 = Annotated[int, Limit(ge=-(2**63), le=2**63 - 1)]
Finite = Annotated[float, Limit(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
Seq = Annotated[int, Limit(ge=0, le=2**63 - 1)]
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
DeviceId = Annotated[str, Limit(pattern=DEVICE_ID_PATTERN)]
Name = Annotated[str, Limit(max_length=255)]
Text = Annotated[str, Limit(max_length=65536)]
CommandName = Annotated[str, Limit(min_length=1, max_length=128)]
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/=-]{0,63}$"
Tag = Annotated[str, Limit(pattern=TAG_PATTERN)]  # e.g. ``rack-4``, ``env=prod``, ``site/paris``
MAX_TAGS = 32


class _Frame:
    """A frame carries ``TYPE`` as its ``type`` field; fields left at their default are not sent.

    ``STRICT`` frames refuse fields they do not name (the codecs keep a sample's or an ack's
    unnamed fields beside the frame instead).
    """

    __slots__ = ()
    TYPE: ClassVar[str] = ""
    STRICT: ClassVar[bool] = False


def as_dict(frame: Any) -> dict[str, Any]:
    """The JSON object of a frame: its ``type`` (if it has one), then every field not at its default."""
    body: dict[str, Any] = {"type": frame.TYPE} if getattr(frame, "TYPE", "") else {}
    for spec in fields(frame):
        value = getattr(frame, spec.name)
        if spec.default is not MISSING and value == spec.default:
            continue
        if spec.default_factory is not MISSING and value == spec.default_factory():
            continue
        body[spec.name] = value
    return body


@dataclass(kw_only=True, slots=True)
class SampleFields:
    """One metrics sample: the seed's flat fields plus the richer optional ones.

    Fields this version does not name are kept by the codecs beside it (``extra``); on the hub,
    ``STRICT`` only sends such samples down the slower path that collects them.
    """

    STRICT: ClassVar[bool] = True

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
            except ValueError as exc:  # both validators report it as a field error
                raise ValueError(f"ts: {exc}, got {self.ts!r:.40}") from None


SAMPLE_FIELDS = frozenset(f.name for f in fields(SampleFields))


# Agent -> hub


@dataclass(kw_only=True, slots=True)
class Hello(_Frame):
    TYPE: ClassVar[str] = "hello"

    protocol: int
    device_id: DeviceId
    agent_version: Name = ""
    hostname: Name = ""
    platform: Name = ""
    capabilities: Annotated[list[Name], Limit(max_length=256)] = field(default_factory=list)
    # Generated at the agent's first start and kept in its state folder: two machines cloned
    # with the same device id still differ here, so the hub can tell them apart.
    instance_id: Annotated[str, Limit(max_length=64)] = ""
    # The agent's configured tags (``tags`` in its config): the hub shows them beside the tags
    # operators set, and replaces them on every hello.
    tags: Annotated[list[Tag], Limit(max_length=MAX_TAGS)] = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class Metrics(SampleFields, _Frame):
    """One live sample; ``seq`` numbers it when the agent asked for ``stored`` acks."""

    TYPE: ClassVar[str] = "metrics"

    seq: Seq | None = None


@dataclass(kw_only=True, slots=True)
class MetricsBatch(_Frame):
    """Many samples at once (a spool replay); sample ``i`` has sequence number ``seq + i``."""

    TYPE: ClassVar[str] = "metrics_batch"
    STRICT: ClassVar[bool] = True

    samples: Annotated[list[SampleFields], Limit(max_length=MAX_BATCH)]
    seq: Seq | None = None


@dataclass(kw_only=True, slots=True)
class Ack(_Frame):
    """The agent's result for a command; other fields (output, exit code...) are kept by the codec."""

    TYPE: ClassVar[str] = "ack"
    STRICT: ClassVar[bool] = True

    id: Int64
    success: bool
    message: Text = ""


@dataclass(kw_only=True, slots=True)
class Heartbeat(_Frame):
    """Sent when the agent has nothing else to say within the heartbeat interval."""

    TYPE: ClassVar[str] = "heartbeat"


@dataclass(kw_only=True, slots=True)
class CredentialSaved(_Frame):
    """The credential of the last ``credential`` frame is stored durably: the hub may retire the old one."""

    TYPE: ClassVar[str] = "credential_saved"
    STRICT: ClassVar[bool] = True


VERSION_PATTERN = r"^[0-9][0-9A-Za-z.]{0,63}$"  # what ``protocol.release.version_key`` may read
ReleaseVersion = Annotated[str, Limit(pattern=VERSION_PATTERN)]


@dataclass(kw_only=True, slots=True)
class UpdateStatus(_Frame):
    """Progress of the update to ``version`` (DESIGN §12): ``downloading``, then ``installed``
    (it runs and the hub welcomed it), ``failed`` (refused or not installable: ``reason`` says why,
    with a ``protocol.release.Refusal`` code first) or ``rolled_back`` (it did not reach welcome)."""

    TYPE: ClassVar[str] = "update_status"
    STRICT: ClassVar[bool] = True

    version: ReleaseVersion
    state: Literal["downloading", "installed", "failed", "rolled_back"]
    reason: Text = ""


AgentFrame = Hello | Metrics | MetricsBatch | Ack | Heartbeat | CredentialSaved | UpdateStatus
AGENT_FRAME_TYPES: dict[str, type[AgentFrame]] = {
    cls.TYPE: cls for cls in (Hello, Metrics, MetricsBatch, Ack, Heartbeat, CredentialSaved, UpdateStatus)
}


# Hub -> agent


@dataclass(kw_only=True, slots=True)
class Welcome(_Frame):
    TYPE: ClassVar[str] = "welcome"

    protocol: int
    device_id: str
    heartbeat_interval: float
    ping_interval: float
    ping_timeout: float
    max_frame_bytes: int
    server_time: str


@dataclass(kw_only=True, slots=True)
class CommandFrame(_Frame):
    TYPE: ClassVar[str] = "command"

    id: int
    command: str
    args: dict[str, Any] | None = None
    created_at: str


@dataclass(kw_only=True, slots=True)
class Acked(_Frame):
    TYPE: ClassVar[str] = "acked"

    id: int


@dataclass(kw_only=True, slots=True)
class Stored(_Frame):
    """Every sample this connection sent with a ``seq`` up to and including this one is committed."""

    TYPE: ClassVar[str] = "stored"

    seq: int


@dataclass(kw_only=True, slots=True)
class ErrorFrame(_Frame):
    TYPE: ClassVar[str] = "error"

    code: str
    message: str
    id: int | None = None  # the command an ``unknown_command`` error is about
    seq: int | None = None  # the sample an ``invalid_sample`` error is about
    retry_after: float | None = None  # seconds to wait before connecting again (``duplicate_device``)


@dataclass(kw_only=True, slots=True)
class CredentialFrame(_Frame):
    """Rotation: this device's new credential. Store it durably, then answer ``credential_saved``.

    The old credential keeps working until the hub has that answer, so an agent that dies
    before it saved the new one is never locked out.
    """

    TYPE: ClassVar[str] = "credential"

    credential: Annotated[str, Limit(min_length=1, max_length=512)] = field(repr=False)


@dataclass(kw_only=True, slots=True)
class UpdateFrame(_Frame):
    """A release for this agent (DESIGN §12): download ``url`` (a path on the hub, such as
    ``/releases/0.2.0/bundle``, fetched with the agent's credential), check ``sha256`` and the
    Ed25519 ``signature`` against the pinned release key, and hand it to the launcher. A lower
    version than the running one is refused unless ``allow_downgrade``."""

    TYPE: ClassVar[str] = "update"

    version: ReleaseVersion
    sha256: Annotated[str, Limit(pattern=r"^[0-9a-f]{64}$")]
    signature: Annotated[str, Limit(min_length=1, max_length=256)]
    url: Annotated[str, Limit(min_length=1, max_length=2048)]
    allow_downgrade: bool = False
    # Seconds within which to start the download, at a moment drawn at random: the hub spreads
    # a fleet's downloads instead of taking them all at once.
    jitter: Annotated[float, Limit(ge=0, le=3600)] = 0.0


HubFrame = Welcome | CommandFrame | Acked | Stored | ErrorFrame | CredentialFrame | UpdateFrame
HUB_FRAME_TYPES: dict[str, type[HubFrame]] = {
    cls.TYPE: cls for cls in (Welcome, CommandFrame, Acked, Stored, ErrorFrame, CredentialFrame, UpdateFrame)
}
