"""Frames to JSON and back, for both ends.

Decoding takes a fast path (one msgspec call for the whole frame) and, when that fails, a
slow path that says exactly what is wrong: bad JSON, an unknown ``type``, bad fields. The
slow path is also how fields a sample or an ack does not name are kept (``extra``), and how
one invalid sample of a batch is told apart from the valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from protocol.errors import FrameDecodeError, FrameValidationError, UnknownFrameError
from protocol.frames import (
    AGENT_FRAME_TYPES,
    HUB_FRAME_TYPES,
    MAX_BATCH,
    SAMPLE_FIELDS,
    Ack,
    AgentFrame,
    HubFrame,
    Metrics,
    MetricsBatch,
    SampleFields,
)

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_agent_decoder = msgspec.json.Decoder(AgentFrame)
_hub_decoder = msgspec.json.Decoder(HubFrame)
_any_decoder = msgspec.json.Decoder()
_ACK_FIELDS = frozenset(Ack.__struct_fields__) | {"type"}


def encode(frame: msgspec.Struct) -> str:
    """The JSON text of a frame (fields left at their default are omitted)."""
    return _encoder.encode(frame).decode()


def encode_json(value: Any) -> bytes:
    """JSON bytes of plain values (dicts of samples in the agent's spool)."""
    return _encoder.encode(value)


def decode_json(data: bytes | str) -> Any:
    """Parse JSON text; raises FrameDecodeError."""
    try:
        return _any_decoder.decode(data)
    except UnicodeDecodeError as exc:  # a binary frame or a body whose bytes are not UTF-8
        raise FrameDecodeError(f"not valid UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except msgspec.DecodeError as exc:
        raise FrameDecodeError(f"not valid JSON: {exc}") from None


def parse_object(data: bytes | str) -> dict[str, Any]:
    """Parse JSON that must be an object."""
    value = decode_json(data)
    if not isinstance(value, dict):
        raise FrameDecodeError("a frame must be a JSON object")
    return value


def convert(value: Any, kind: type[T]) -> T:
    """Validate plain values into ``kind``; raises FrameValidationError naming the field."""
    try:
        converted: T = msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise FrameValidationError(str(exc)) from None
    return converted


@dataclass(frozen=True, slots=True)
class ReceivedSample:
    """A valid sample as the hub received it, with its sequence number and unnamed fields."""

    fields: SampleFields
    seq: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefusedSample:
    """A sample that failed validation: refused alone, by its sequence number."""

    seq: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Samples:
    """What a ``metrics`` or ``metrics_batch`` frame carried."""

    valid: list[ReceivedSample]
    refused: list[RefusedSample]
    last_seq: int | None  # the highest sequence number this frame covers


@dataclass(frozen=True, slots=True)
class AckIn:
    """An ack with the fields the protocol does not name (output, exit code...)."""

    frame: Ack
    extra: Mapping[str, Any]


MAX_EXTRA_DEPTH = 32


def split_sample(values: Mapping[str, Any]) -> tuple[SampleFields, dict[str, Any]]:
    """Validate a sample's named fields; return the struct and the other fields.

    The other fields are kept as they came, so they must be storable too: integers within
    signed 64 bits, nested at most ``MAX_EXTRA_DEPTH`` deep.
    """
    named = {k: v for k, v in values.items() if k in SAMPLE_FIELDS}
    extra = {k: v for k, v in values.items() if k not in SAMPLE_FIELDS}
    for key, value in extra.items():
        check_storable(value, key, 0)
    return convert(named, SampleFields), extra


def check_storable(value: Any, where: str, depth: int) -> None:
    """Raise FrameValidationError unless ``value`` (parsed JSON) can be stored and sent back."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise FrameValidationError(f"{where}: integer outside signed 64 bits")
        return
    if depth >= MAX_EXTRA_DEPTH:
        raise FrameValidationError(f"{where}: nested more than {MAX_EXTRA_DEPTH} deep")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        check_storable(item, f"{where}.{key}", depth + 1)


def decode_agent_frame(data: bytes | str) -> AgentFrame | Samples | AckIn:
    """Decode what an agent sent: samples come back as ``Samples``, acks as ``AckIn``.

    Raises a ProtocolError subclass (its ``code`` goes into the error frame).
    """
    try:
        frame: AgentFrame = _agent_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return _decode_agent_slowly(data)
    if isinstance(frame, Metrics):
        return Samples([ReceivedSample(frame, frame.seq)], [], frame.seq)
    if isinstance(frame, MetricsBatch):
        return _batch(frame)
    if isinstance(frame, Ack):
        return AckIn(frame, {})
    return frame


def _batch(frame: MetricsBatch) -> Samples:
    first = frame.seq
    if first is not None and first + len(frame.samples) > 2**63:
        raise FrameValidationError("seq: the batch's sequence numbers pass 2**63-1")
    if first is None:
        return Samples([ReceivedSample(s) for s in frame.samples], [], None)
    valid = [ReceivedSample(s, first + i) for i, s in enumerate(frame.samples)]
    return Samples(valid, [], first + len(frame.samples) - 1 if frame.samples else None)


def _kind(obj: dict[str, Any], types: Mapping[str, type[Any]]) -> str:
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in types:
        raise UnknownFrameError(f"unknown frame type {kind!r:.40}; expected one of {sorted(types)}")
    return kind


def _decode_agent_slowly(data: bytes | str) -> AgentFrame | Samples | AckIn:
    obj = parse_object(data)
    kind = _kind(obj, AGENT_FRAME_TYPES)
    if kind == "metrics":
        return _metrics(obj)
    if kind == "metrics_batch":
        return _samples_of_batch(obj)
    if kind == "ack":
        extra = {k: v for k, v in obj.items() if k not in _ACK_FIELDS}
        for key, value in extra.items():
            check_storable(value, key, 0)  # kept as the command's result
        named = {k: v for k, v in obj.items() if k in _ACK_FIELDS}
        return AckIn(convert(named, Ack), extra)
    kind_type: type[AgentFrame] = AGENT_FRAME_TYPES[kind]
    return convert(obj, kind_type)


def _seq(obj: Mapping[str, Any]) -> int | None:
    value = obj.get("seq")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise FrameValidationError(f"seq: expected an integer from 0 to 2**63-1, got {value!r:.40}")
    return value


def _metrics(obj: dict[str, Any]) -> Samples:
    seq = _seq(obj)
    values = {k: v for k, v in obj.items() if k not in ("type", "seq")}
    try:
        fields, extra = split_sample(values)
    except FrameValidationError as exc:
        if seq is None:
            raise
        return Samples([], [RefusedSample(seq, str(exc))], seq)
    return Samples([ReceivedSample(fields, seq, extra)], [], seq)


def _samples_of_batch(obj: dict[str, Any]) -> Samples:
    first = _seq(obj)
    samples = obj.get("samples")
    if not isinstance(samples, list):
        raise FrameValidationError("samples: expected an array")
    if first is not None and first + len(samples) > 2**63:
        raise FrameValidationError("seq: the batch's sequence numbers pass 2**63-1")
    if len(samples) > MAX_BATCH:
        raise FrameValidationError(f"samples: at most {MAX_BATCH} per batch, got {len(samples)}")
    if unknown := sorted(set(obj) - {"type", "seq", "samples"}):
        raise FrameValidationError(f"unknown fields in metrics_batch: {', '.join(unknown)}")
    valid: list[ReceivedSample] = []
    refused: list[RefusedSample] = []
    for index, values in enumerate(samples):
        seq = None if first is None else first + index
        try:
            if not isinstance(values, dict):
                raise FrameValidationError(f"samples[{index}]: expected an object")
            fields, extra = split_sample(values)
        except FrameValidationError as exc:
            refused.append(RefusedSample(seq, f"samples[{index}]: {exc}"))
            continue
        valid.append(ReceivedSample(fields, seq, extra))
    last = None if first is None or not samples else first + len(samples) - 1
    return Samples(valid, refused, last)


def decode_hub_frame(data: bytes | str) -> HubFrame:
    """Decode what the hub sent (used by agents); raises a ProtocolError subclass."""
    try:
        frame: HubFrame = _hub_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        obj = parse_object(data)
        kind_type: type[HubFrame] = HUB_FRAME_TYPES[_kind(obj, HUB_FRAME_TYPES)]
        frame = convert(obj, kind_type)
    return frame
