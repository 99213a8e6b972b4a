"""Frames to JSON and back with the standard library only: the agent's codec.

The agent sends few frames and reads fewer, so it checks them in plain Python against the
same definitions the hub decodes with msgspec (``protocol.codec``); importing msgspec would
cost every agent 1.3 MiB. ``tests/unit/test_protocol.py`` holds the two validators to the
same answers.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from protocol.errors import FrameDecodeError, FrameValidationError, UnknownFrameError
from protocol.frames import HUB_FRAME_TYPES, SAMPLE_FIELDS, HubFrame, Limit, SampleFields, as_dict

T = TypeVar("T")
MAX_EXTRA_DEPTH = 32

_decoder = json.JSONDecoder()
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def encode(frame: Any) -> str:
    """The JSON text of a frame (fields left at their default are omitted)."""
    return _encode(as_dict(frame))


def encode_json(value: Any) -> bytes:
    """JSON bytes of plain values (dicts of samples in the agent's spool)."""
    return _encode(value).encode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(data: bytes | str) -> Any:
    """Parse JSON text; raises FrameDecodeError (NaN and Infinity are not JSON either)."""
    try:
        text = data.decode() if isinstance(data, bytes | bytearray) else data
        return json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise FrameDecodeError(f"not valid UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        raise FrameDecodeError(f"not valid JSON: {exc}") from None


def parse_object(data: bytes | str) -> dict[str, Any]:
    """Parse JSON that must be an object."""
    return as_object(decode_json(data))


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object; raises FrameDecodeError (both codecs' frames are objects)."""
    if not isinstance(value, dict):
        raise FrameDecodeError("a frame must be a JSON object")
    return value


def decode_hub_frame(data: bytes | str) -> HubFrame:
    """Decode what the hub sent; raises a ProtocolError subclass."""
    obj = parse_object(data)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in HUB_FRAME_TYPES:
        raise UnknownFrameError(f"unknown frame type {kind!r:.40}; expected one of {sorted(HUB_FRAME_TYPES)}")
    frame: HubFrame = convert({k: v for k, v in obj.items() if k != "type"}, HUB_FRAME_TYPES[kind])
    return frame


def split_sample(values: Mapping[str, Any]) -> tuple[SampleFields, dict[str, Any]]:
    """Validate a sample's named fields; return them and the other fields (``partition``)."""
    named, extra = partition(values)
    return convert(named, SampleFields), extra


def partition(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sample's fields named by ``SampleFields`` (not checked yet) and the others.

    The other fields are kept as they came, so they must be storable too: integers within
    signed 64 bits, nested at most ``MAX_EXTRA_DEPTH`` deep. Both codecs split samples here.
    """
    named = {k: v for k, v in values.items() if k in SAMPLE_FIELDS}
    extra = {k: v for k, v in values.items() if k not in SAMPLE_FIELDS}
    for key, value in extra.items():
        check_storable(value, key, 0)
    return named, extra


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


def convert(obj: Any, kind: type[T]) -> T:
    """Validate a parsed JSON object into the frame dataclass ``kind``; raises FrameValidationError."""
    return _checker(kind)(obj, "$")  # type: ignore[no-any-return]


# The validator: each type hint is compiled once into a function that checks a value against it
# (``_checker``); the hint's shape is read when compiling, never while checking. An agent replaying
# its spool checks every sample: reading the hints on each call cost it about 30 us a sample.

Check = Callable[[Any, str], Any]
_CHECKERS: dict[Any, Check] = {}


def _checker(hint: Any) -> Check:
    """The function that checks a value against ``hint`` (built on first use, then kept)."""
    check = _CHECKERS.get(hint)
    if check is None:
        check = _CHECKERS[hint] = _compile(hint)
    return check


def _compile(hint: Any) -> Check:
    if hint is Any:
        return _any
    origin = get_origin(hint)
    if origin is Annotated:
        inner, *marks = get_args(hint)
        return _annotated(_checker(inner), tuple(m for m in marks if isinstance(m, Limit)))
    if origin is typing.Union or origin is types.UnionType:
        return _union(get_args(hint))
    if origin is Literal:
        return _literal(get_args(hint))
    if origin is list:
        (item,) = get_args(hint)
        return _list(_checker(item))
    if origin is dict:
        return _dict
    if is_dataclass(hint):
        return _dataclass(hint)  # type: ignore[arg-type]
    return _SCALARS[hint]


def _any(value: Any, where: str) -> Any:
    return value


def _annotated(inner: Check, limits: tuple[Limit, ...]) -> Check:
    if len(limits) == 1 and _bounds_only(limits[0]):
        return _bounded(inner, limits[0])

    def check(value: Any, where: str) -> Any:
        checked = inner(value, where)
        for limit in limits:
            _within(checked, limit, where)
        return checked

    return check


def _bounds_only(limit: Limit) -> bool:
    return limit.min_length is None and limit.max_length is None and limit.pattern is None


def _bounded(inner: Check, limit: Limit) -> Check:
    """A number between bounds: one chained comparison; ``_within`` words a failure (NaN too)."""
    low = -math.inf if limit.ge is None else limit.ge
    high = math.inf if limit.le is None else limit.le

    def check(value: Any, where: str) -> Any:
        checked = inner(value, where)
        if not low <= checked <= high:
            _within(checked, limit, where)
        return checked

    return check


def _literal(allowed: tuple[Any, ...]) -> Check:
    def check(value: Any, where: str) -> Any:
        if isinstance(value, str) and value in allowed:
            return value
        raise _wrong(f"one of {', '.join(map(repr, allowed))}", value, where)

    return check


def _list(item: Check) -> Check:
    def check(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise _wrong("array", value, where)
        return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

    return check


def _dict(value: Any, where: str) -> Any:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _wrong("object", value, where)
    return value


def _optional(only: Check) -> Check:
    def check(value: Any, where: str) -> Any:
        return None if value is None else only(value, where)

    return check


def _union(options: tuple[Any, ...]) -> Check:
    nullable = type(None) in options
    checks = [_checker(option) for option in options if option is not type(None)]
    if len(checks) == 1:  # ``X | None``: the one option's own error, as below
        return _optional(checks[0]) if nullable else checks[0]

    def check(value: Any, where: str) -> Any:
        if value is None and nullable:
            return None
        errors: list[str] = []
        for option in checks:
            try:
                return option(value, where)
            except FrameValidationError as exc:
                errors.append(str(exc))
        raise FrameValidationError(
            errors[0] if len(errors) == 1 else f"Invalid value {value!r:.40} - at `{where}`"
        )

    return check


def _int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _wrong("int", value, where)


def _float(value: Any, where: str) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise FrameValidationError(f"Number out of range - at `{where}`") from None
    raise _wrong("float", value, where)


def _str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise _wrong("str", value, where)


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _wrong("bool", value, where)


_SCALARS: dict[Any, Callable[[Any, str], Any]] = {int: _int, float: _float, str: _str, bool: _bool}


def _within(value: Any, limit: Limit, where: str) -> None:
    if limit.ge is not None and not value >= limit.ge:
        raise FrameValidationError(f"Expected a value >= {limit.ge:g}, got {value!r:.40} - at `{where}`")
    if limit.le is not None and not value <= limit.le:
        raise FrameValidationError(f"Expected a value <= {limit.le:g}, got {value!r:.40} - at `{where}`")
    if limit.min_length is not None and len(value) < limit.min_length:
        raise FrameValidationError(f"Expected a length >= {limit.min_length} - at `{where}`")
    if limit.max_length is not None and len(value) > limit.max_length:
        raise FrameValidationError(f"Expected a length <= {limit.max_length} - at `{where}`")
    if limit.pattern is not None and re.search(limit.pattern, value) is None:
        raise FrameValidationError(f"Expected a string matching {limit.pattern!r} - at `{where}`")


def _spec(kind: type[Any]) -> tuple[dict[str, Any], frozenset[str], bool]:
    """Type hints, required field names and strictness of a frame dataclass."""
    hints = typing.get_type_hints(kind, include_extras=True)
    names = {f.name for f in fields(kind)}
    required = frozenset(
        f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING
    )
    return {n: hints[n] for n in names}, required, bool(getattr(kind, "STRICT", False))


def _dataclass(kind: type[Any]) -> Check:
    hints, required, strict = _spec(kind)
    checks: dict[str, Check] = {}
    _CHECKERS[kind] = lambda value, where: build(value, where)  # a dataclass that names itself
    checks.update((name, _checker(hint)) for name, hint in hints.items())
    paths = {name: f"$.{name}" for name in hints}

    def build(value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise _wrong("object", value, where)
        if not required <= value.keys():
            missing = sorted(required - value.keys())
            raise FrameValidationError(f"Object missing required field `{missing[0]}` - at `{where}`")
        if strict and not value.keys() <= checks.keys():
            unknown = sorted(value.keys() - checks.keys())
            raise FrameValidationError(f"Object contains unknown field `{unknown[0]}` - at `{where}`")
        at = paths if where == "$" else {k: f"{where}.{k}" for k in value}  # a frame's own fields
        checked = {k: checks[k](v, at[k]) for k, v in value.items() if k in checks}
        try:
            return kind(**checked)
        except ValueError as exc:  # __post_init__ (a sample's time)
            raise FrameValidationError(f"{exc} - at `{where}`") from None

    return build


def _wrong(expected: str, value: Any, where: str) -> FrameValidationError:
    got = "null" if value is None else type(value).__name__
    return FrameValidationError(f"Expected `{expected}`, got `{got}` - at `{where}`")
