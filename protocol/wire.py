"""The agent's side of protocol v1 without pydantic: frozen dataclasses and orjson.

The hub validates with the pydantic models in ``frames.py``; an agent only needs to
build its own frames and read the hub's, and importing pydantic would cost it a third
of its memory. ``tests/unit/test_protocol_wire.py`` proves both sides agree: the same
fields, the same values, the same ``protocol.errors`` exceptions.

Validation here is never more lenient than the models (a frame accepted here is accepted
there with the same values); it skips pydantic's lax conversions (``"3"`` as a number),
which the hub never sends and the agent never produces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

from protocol.errors import FrameDecodeError, FrameValidationError, UnknownFrameError
from protocol.timestamps import check_timestamp

PROTOCOL_VERSION = 1
MAX_BATCH = 1000
_INT64 = (-(2**63), 2**63)
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")

# --- field checks: each returns the value as the pydantic model would hold it ---


def _int(value: Any) -> int:
    # 64 bits: what orjson can write and pydantic converts from a float.
    if isinstance(value, int | float) and not isinstance(value, bool) and _INT64[0] <= value < _INT64[1]:
        if isinstance(value, int):
            return value
        if value.is_integer():
            return int(value)
    raise ValueError("expected a 64-bit integer")


def _float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError("expected a number")


def _finite(value: Any) -> float:
    number = _float(value)
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("expected a string")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


def _ts(value: Any) -> float | str:
    checked = check_timestamp(value if isinstance(value, str) else _float(value))
    return checked if isinstance(checked, str) else float(checked)


def _status(value: Any) -> str:
    if value in ("ok", "error"):
        return str(value)
    raise ValueError("expected 'ok' or 'error'")


def _object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise ValueError("expected an object")


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional(value: Any) -> Any:
        return None if value is None else check(value)

    return optional


Check = Callable[[Any], Any]


def _checked(
    kind: str, values: Mapping[str, Any], checks: Mapping[str, Check], required: frozenset[str]
) -> dict[str, Any]:
    """Apply ``checks`` to the fields present; name every problem in one FrameValidationError."""
    out: dict[str, Any] = {}
    problems = [f"{name}: field required" for name in sorted(required - values.keys())]
    for name, value in values.items():
        check = checks.get(name)
        if check is None:
            problems.append(f"{name}: extra field not permitted in {kind}")
            continue
        try:
            out[name] = check(value)
        except ValueError as exc:
            problems.append(f"{name}: {exc}, got {value!r:.60}")
    if problems:
        raise FrameValidationError("; ".join(problems))
    return out


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    # The models encode with exclude_none: a None field is absent on the wire.
    return {k: v for k, v in values.items() if v is not None}


# --- agent -> hub ---

_SAMPLE_CHECKS: dict[str, Check] = {
    "ts": _optional(_ts),
    **dict.fromkeys(("hostname", "agent_version", "last_error"), _optional(_str)),
    **dict.fromkeys(("cpu", "ram", "disk"), _optional(_finite)),
    "status": _optional(_status),
    **dict.fromkeys(
        (
            "uptime_sec",
            "mem_used",
            "mem_total",
            "swap_used",
            "swap_total",
            "disk_used",
            "disk_total",
            "procs",
        ),
        _optional(_int),
    ),
    **dict.fromkeys(
        (
            "load_1",
            "load_5",
            "load_15",
            "disk_read_bps",
            "disk_write_bps",
            "net_rx_bps",
            "net_tx_bps",
            "temp_max",
        ),
        _optional(_finite),
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleFields:
    """One metrics sample: the seed's flat fields, the richer optional ones, and ``extra``."""

    ts: float | str | None = None
    hostname: str | None = None
    cpu: float | None = None
    ram: float | None = None
    disk: float | None = None
    uptime_sec: int | None = None
    agent_version: str | None = None
    status: Literal["ok", "error"] | None = None
    last_error: str | None = None
    load_1: float | None = None
    load_5: float | None = None
    load_15: float | None = None
    mem_used: int | None = None
    mem_total: int | None = None
    swap_used: int | None = None
    swap_total: int | None = None
    disk_used: int | None = None
    disk_total: int | None = None
    disk_read_bps: float | None = None
    disk_write_bps: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    procs: int | None = None
    temp_max: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields this version does not name

    @classmethod
    def from_mapping(cls, sample: Mapping[str, Any]) -> SampleFields:
        """Validate a sample dict (as the collector or spool holds it); unknown keys go to ``extra``."""
        known = {k: v for k, v in sample.items() if k in _SAMPLE_CHECKS}
        extra = {k: v for k, v in sample.items() if k not in _SAMPLE_CHECKS}
        return cls(**_checked("sample", known, _SAMPLE_CHECKS, frozenset()), extra=extra)

    def to_wire(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in _SAMPLE_CHECKS}
        return _drop_none({**self.extra, **values})


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics(SampleFields):
    type: Literal["metrics"] = "metrics"

    @classmethod
    def of(cls, sample: SampleFields) -> Metrics:
        return cls(**{name: getattr(sample, name) for name in _SAMPLE_CHECKS}, extra=sample.extra)

    def to_wire(self) -> dict[str, Any]:
        return {**SampleFields.to_wire(self), "type": self.type}


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsBatch:
    """Many samples at once: how a reconnecting agent replays its spool."""

    type: Literal["metrics_batch"] = "metrics_batch"
    samples: tuple[SampleFields, ...]

    def __post_init__(self) -> None:
        if len(self.samples) > MAX_BATCH:
            raise FrameValidationError(f"samples: at most {MAX_BATCH} per batch, got {len(self.samples)}")

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "samples": [s.to_wire() for s in self.samples]}


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    device_id: str
    agent_version: str = ""
    hostname: str = ""
    platform: str = ""
    capabilities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _DEVICE_ID.fullmatch(self.device_id):
            raise FrameValidationError(
                f"device_id: {self.device_id!r} is not 1-128 of A-Z a-z 0-9 . _ : @ - "
                "starting with a letter or digit"
            )

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "protocol": self.protocol,
            "device_id": self.device_id,
            "agent_version": self.agent_version,
            "hostname": self.hostname,
            "platform": self.platform,
            "capabilities": list(self.capabilities),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """The agent's result for a command; ``extra`` (output, exit code...) rides along."""

    type: Literal["ack"] = "ack"
    id: int
    success: bool
    message: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        named = {"type": self.type, "id": self.id, "success": self.success, "message": self.message}
        return _drop_none({**self.extra, **named})


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """Sent when the agent has nothing else to say within the heartbeat interval."""

    type: Literal["heartbeat"] = "heartbeat"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type}


AgentFrame = Hello | Metrics | MetricsBatch | Ack | Heartbeat


def encode(frame: AgentFrame) -> str:
    """The JSON text of an agent frame, as ``codec.encode`` writes the pydantic model."""
    return orjson.dumps(frame.to_wire()).decode()


# --- hub -> agent ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    device_id: str
    heartbeat_interval: float
    ping_interval: float
    ping_timeout: float
    max_frame_bytes: int
    server_time: str

    CHECKS: ClassVar[dict[str, Check]] = {
        "protocol": _int,
        "device_id": _str,
        "heartbeat_interval": _float,
        "ping_interval": _float,
        "ping_timeout": _float,
        "max_frame_bytes": _int,
        "server_time": _str,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandFrame:
    type: Literal["command"] = "command"
    id: int
    command: str
    args: dict[str, Any] | None = None
    created_at: str

    CHECKS: ClassVar[dict[str, Check]] = {
        "id": _int,
        "command": _str,
        "args": _optional(_object),
        "created_at": _str,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Acked:
    type: Literal["acked"] = "acked"
    id: int

    CHECKS: ClassVar[dict[str, Check]] = {"id": _int}


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorFrame:
    type: Literal["error"] = "error"
    code: str
    message: str
    id: int | None = None  # the command an ``unknown_command`` error is about

    CHECKS: ClassVar[dict[str, Check]] = {"code": _str, "message": _str, "id": _optional(_int)}


HubFrame = Welcome | CommandFrame | Acked | ErrorFrame

HUB_FRAME_TYPES: dict[str, type[HubFrame]] = {
    "welcome": Welcome,
    "command": CommandFrame,
    "acked": Acked,
    "error": ErrorFrame,
}

# Fields without a default must be present (``type`` is checked by the dispatch).
_REQUIRED: dict[str, frozenset[str]] = {
    "welcome": frozenset(
        {"device_id", "heartbeat_interval", "ping_interval", "ping_timeout", "max_frame_bytes", "server_time"}
    ),
    "command": frozenset({"id", "command", "created_at"}),
    "acked": frozenset({"id"}),
    "error": frozenset({"code", "message"}),
}


def parse_object(data: bytes | str) -> dict[str, Any]:
    """Parse JSON that must be an object."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameDecodeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FrameDecodeError("a frame must be a JSON object")
    return value


def decode_hub_frame(data: bytes | str) -> HubFrame:
    """Decode what the hub sent; raises a ProtocolError subclass naming the problem."""
    obj = parse_object(data)
    kind = obj.pop("type", None)
    cls = HUB_FRAME_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UnknownFrameError(f"unknown frame type {kind!r}; expected one of {sorted(HUB_FRAME_TYPES)}")
    values = _checked(kind, obj, cls.CHECKS, _REQUIRED[kind])
    return cls(**values)
