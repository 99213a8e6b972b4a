"""Frames to JSON and back on the hub, with msgspec.

Decoding takes a fast path (one msgspec call for the whole frame, into structs generated from
the dataclasses of ``protocol.frames``, bounds included) and, when that fails, a slow path that
says exactly what is wrong: bad JSON, an unknown ``type``, bad fields. The slow path is also
how fields a sample or an ack does not name are kept (``extra``), and how one invalid sample of
a batch is told apart from the valid ones. Agents use ``protocol.plain`` (standard library
only) against the same definitions.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Annotated, Any, TypeVar, get_args, get_origin

import msgspec

from protocol.errors import FrameDecodeError, FrameValidationError, UnknownFrameError
from protocol.frames import (
    AGENT_FRAME_TYPES,
    MAX_BATCH,
    Ack,
    AgentFrame,
    Limit,
    SampleFields,
    as_dict,
)
from protocol.plain import as_object, check_storable, partition  # the same checks at both ends

T = TypeVar("T")


# Structs generated from the frame dataclasses: the same fields, bounds and defaults.


def _meta(limit: Limit) -> msgspec.Meta:
    names = ("ge", "le", "min_length", "max_length", "pattern")
    return msgspec.Meta(**{n: getattr(limit, n) for n in names if getattr(limit, n) is not None})


_HINTS: dict[Any, Any] = {}  # translated once: routes check every path's DeviceId with it


def hint_of(hint: Any) -> Any:
    """A type hint of ``protocol.frames`` as msgspec checks it: ``Limit`` marks as ``Meta``, frame
    dataclasses as structs (``DeviceId``, a field's hint...)."""
    if hint not in _HINTS:
        _HINTS[hint] = _translate(hint)
    return _HINTS[hint]


def _translate(hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        marks = tuple(_meta(m) if isinstance(m, Limit) else m for m in args[1:])
        inner = hint_of(args[0])
        return Annotated[(inner, *marks)] if marks else inner
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[tuple(hint_of(a) for a in args)]  # noqa: UP007 - built from a tuple
    if origin is list:
        return list[hint_of(args[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[hint_of(args[0]), hint_of(args[1])]  # type: ignore[misc]
    if is_dataclass(hint):
        return struct_of(hint, tagged=False)  # type: ignore[arg-type]
    return hint


_STRUCTS: dict[tuple[type[Any], bool], type[msgspec.Struct]] = {}


def struct_of(kind: type[Any], tagged: bool = True) -> type[msgspec.Struct]:
    """The msgspec struct that decodes frame dataclass ``kind`` (tagged with its ``type``)."""
    if (kind, tagged) not in _STRUCTS:
        _STRUCTS[kind, tagged] = _define(kind, tagged)
    return _STRUCTS[kind, tagged]


def _define(kind: type[Any], tagged: bool) -> type[msgspec.Struct]:
    hints = typing.get_type_hints(kind, include_extras=True)
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in fields(kind):
        hint = hint_of(hints[f.name])
        if f.default is not MISSING:
            spec.append((f.name, hint, f.default))
        elif f.default_factory is not MISSING:
            spec.append((f.name, hint, msgspec.field(default_factory=f.default_factory)))
        else:
            spec.append((f.name, hint))
    post_init = getattr(kind, "__post_init__", None)
    return msgspec.defstruct(
        kind.__name__,
        spec,
        module=__name__,
        namespace={"__post_init__": post_init} if post_init else None,
        kw_only=True,
        omit_defaults=True,
        forbid_unknown_fields=bool(getattr(kind, "STRICT", False)),
        tag_field="type" if tagged else None,
        tag=kind.TYPE if tagged else None,
    )


_SAMPLE = struct_of(SampleFields, tagged=False)
_AGENT = {struct_of(kind): kind for kind in AGENT_FRAME_TYPES.values()}
_METRICS = struct_of(AGENT_FRAME_TYPES["metrics"])
_BATCH = struct_of(AGENT_FRAME_TYPES["metrics_batch"])
_ACK = struct_of(Ack)
_encoder = msgspec.json.Encoder()
_agent_decoder = msgspec.json.Decoder(typing.Union[tuple(_AGENT)])  # noqa: UP007 - built from a tuple
_any_decoder = msgspec.json.Decoder()
_ACK_FIELDS = frozenset(f.name for f in fields(Ack)) | {"type"}


def encode(frame: Any) -> str:
    """The JSON text of a frame (fields left at their default are omitted)."""
    return _encoder.encode(as_dict(frame)).decode()


def encode_json(value: Any) -> bytes:
    """JSON bytes of plain values."""
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
    return as_object(decode_json(data))


def convert(value: Any, kind: Any) -> Any:
    """Validate plain values into ``kind``: a struct, or a type hint of ``protocol.frames`` (such as
    ``DeviceId``) whose ``Limit`` marks are checked; raises FrameValidationError."""
    try:
        return msgspec.convert(value, hint_of(kind))
    except msgspec.ValidationError as exc:
        raise FrameValidationError(str(exc)) from None


def _frame(struct: msgspec.Struct) -> Any:
    """The frame dataclass of a decoded struct."""
    return _AGENT[type(struct)](**msgspec.structs.asdict(struct))


_NONE: Mapping[str, Any] = types.MappingProxyType({})  # no unnamed fields: one shared, not a dict each


@dataclass(slots=True)
class ReceivedSample:
    """A valid sample as the hub received it, with its sequence number and unnamed fields.

    Not frozen (a frozen dataclass's ``__init__`` costs three times as much, and a batch makes
    500 of them); treat it as read-only.
    """

    named: Any  # the struct the fast path decoded, or the slow path's dict: read ``fields()``
    seq: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # the decoders pass ``_NONE`` instead

    @property
    def values(self) -> dict[str, Any]:
        """Every field of ``SampleFields`` by name, ``None`` where the sample did not set it.

        Built when the sample is stored, not when it is decoded: one dict per sample, in C.
        """
        if isinstance(self.named, dict):
            return self.named
        values = msgspec.structs.asdict(self.named)
        values.pop("seq", None)  # a ``metrics`` frame's own number, not a sample field
        return values

    def fields(self) -> dict[str, Any]:
        """The fields this sample set, named or not (None left out), in a new dict the caller owns.

        What the fast path decoded is read in C (``to_builtins`` omits the fields left at their
        default, None): no dict of every named field, no Python loop.
        """
        named = self.named
        if isinstance(named, dict):
            given = {k: v for k, v in named.items() if v is not None}
            given.update(self.extra)
            return given
        out: dict[str, Any] = msgspec.to_builtins(named)
        out.pop("type", None)  # a ``metrics`` frame's tag and number, not sample fields
        out.pop("seq", None)
        return out


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


def split_sample(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate a sample's named fields; return them (all of ``SampleFields``) and the others
    (``protocol.plain.partition``: the same split as the agent's)."""
    named, extra = partition(values)
    return msgspec.structs.asdict(convert(named, _SAMPLE)), extra


def decode_agent_frame(data: bytes | str) -> AgentFrame | Samples | AckIn:
    """Decode what an agent sent: samples come back as ``Samples``, acks as ``AckIn``.

    Raises a ProtocolError subclass (its ``code`` goes into the error frame).
    """
    try:
        struct = _agent_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return _decode_agent_slowly(data)
    kind = type(struct)
    if kind is _METRICS:
        seq = struct.seq
        return Samples([ReceivedSample(struct, seq, _NONE)], [], seq)
    if kind is _BATCH:
        return _batch(struct.samples, struct.seq)
    if kind is _ACK:
        return AckIn(_frame(struct), {})
    frame: AgentFrame = _frame(struct)
    return frame


def _batch(samples: list[msgspec.Struct], first: int | None) -> Samples:
    if first is not None and first + len(samples) > 2**63:
        raise FrameValidationError("seq: the batch's sequence numbers pass 2**63-1")
    if first is None:
        return Samples([ReceivedSample(s, None, _NONE) for s in samples], [], None)
    valid = [ReceivedSample(s, first + i, _NONE) for i, s in enumerate(samples)]
    return Samples(valid, [], first + len(samples) - 1 if samples else None)


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
        return AckIn(_frame(convert(named, _ACK)), extra)
    frame: AgentFrame = _frame(convert(obj, struct_of(AGENT_FRAME_TYPES[kind])))
    return frame


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
        named, extra = split_sample(values)
    except FrameValidationError as exc:
        if seq is None:
            raise
        return Samples([], [RefusedSample(seq, str(exc))], seq)
    return Samples([ReceivedSample(named, seq, extra)], [], seq)


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
            named, extra = split_sample(values)
        except FrameValidationError as exc:
            refused.append(RefusedSample(seq, f"samples[{index}]: {exc}"))
            continue
        valid.append(ReceivedSample(named, seq, extra))
    last = None if first is None or not samples else first + len(samples) - 1
    return Samples(valid, refused, last)
