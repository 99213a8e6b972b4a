"""Protocol v1 as pure data: decoding, validation bounds, encoding, the command lifecycle, no I/O imports."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    Acked,
    CommandFrame,
    CommandState,
    ErrorCode,
    ErrorFrame,
    FrameDecodeError,
    FrameValidationError,
    Heartbeat,
    Hello,
    IllegalTransition,
    ProtocolError,
    Stored,
    UnknownFrameError,
    Welcome,
    decode_agent_frame,
    decode_hub_frame,
    encode,
    is_open,
    to_epoch,
    to_iso,
    transition,
)
from protocol.codec import AckIn, RefusedSample, Samples, struct_of
from protocol.frames import MAX_BATCH, SAMPLE_FIELDS, SampleFields
from protocol.plain import split_sample
from protocol.rest import parse_ingest

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
NOW = 1_760_000_000.0  # a time in the accepted range (1970-2100)


def _raw(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _samples(data: bytes | str) -> Samples:
    decoded = decode_agent_frame(data)
    assert isinstance(decoded, Samples), decoded
    return decoded


def _fields(decoded: Samples, index: int = 0) -> dict[str, Any]:
    """The named fields of a received sample that are set."""
    values = decoded.valid[index].values
    assert set(values) == SAMPLE_FIELDS  # every named field, None where absent, on both paths
    return {k: v for k, v in values.items() if v is not None}


# Layering


def test_protocol_imports_nothing_async_or_networked() -> None:
    """Importing ``protocol`` loads no asyncio, starlette, websockets, aiosqlite, psutil, uvicorn, settings.

    The whole surface, and the hub/agent split, are in test_layering.py and `make lint` (lint-imports).
    """
    code = (
        "import sys, protocol, protocol.codec, protocol.hub_session, protocol.agent_session; "
        "bad = {'asyncio', 'starlette', 'websockets', 'aiosqlite', 'psutil', 'uvicorn', 'httpx', "
        "'pydantic_settings'}; "
        "print(sorted(bad & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Decoding what agents send


def test_metrics_frame_decodes_to_one_sample_with_its_seq() -> None:
    """A ``metrics`` frame becomes ``Samples`` with one valid sample numbered by the frame's ``seq``."""
    decoded = _samples(_raw(type="metrics", seq=7, ts=NOW, cpu=3.5, uptime_sec=10, status="ok"))
    assert decoded.refused == [] and decoded.last_seq == 7
    (sample,) = decoded.valid
    assert sample.seq == 7 and sample.extra == {}
    assert _fields(decoded)["cpu"] == 3.5 and _fields(decoded)["uptime_sec"] == 10


def test_metrics_keep_extra_fields() -> None:
    """Metric fields the protocol does not name ride along in ``extra`` instead of being refused."""
    decoded = _samples(b'{"type": "metrics", "cpu": 3.5, "fan_rpm": 900, "gpu": {"temp": 61.5}}')
    (sample,) = decoded.valid
    assert _fields(decoded)["cpu"] == 3.5
    assert sample.extra == {"fan_rpm": 900, "gpu": {"temp": 61.5}}


def test_batch_samples_are_numbered_from_the_frame_seq() -> None:
    """Sample ``i`` of a batch carries ``seq + i``; ``last_seq`` is the last of them."""
    frame = {"type": "metrics_batch", "seq": 10, "samples": [{"ts": NOW + i, "cpu": i} for i in range(3)]}
    decoded = _samples(json.dumps(frame))
    assert [s.seq for s in decoded.valid] == [10, 11, 12] and decoded.last_seq == 12
    assert decoded.refused == []


def test_batch_without_seq_has_no_numbers() -> None:
    """An agent without ``stored_acks`` sends no ``seq``: samples and ``last_seq`` are ``None``."""
    decoded = _samples(json.dumps({"type": "metrics_batch", "samples": [{"cpu": 1}, {"cpu": 2}]}))
    assert [s.seq for s in decoded.valid] == [None, None] and decoded.last_seq is None


def test_batch_samples_keep_their_extra_fields() -> None:
    """An unnamed field of one batch sample stays with that sample only."""
    frame = {"type": "metrics_batch", "seq": 1, "samples": [{"cpu": 1}, {"cpu": 2, "fan_rpm": 5}]}
    decoded = _samples(json.dumps(frame))
    assert [dict(s.extra) for s in decoded.valid] == [{}, {"fan_rpm": 5}]


def test_ack_keeps_extra_fields() -> None:
    """An ack decodes to ``AckIn``: the named fields in the frame, output and exit code in ``extra``."""
    decoded = decode_agent_frame(
        '{"type": "ack", "id": 3, "success": false, "message": "no", "output": "e", "exit_code": 2}'
    )
    assert isinstance(decoded, AckIn)
    assert (decoded.frame.id, decoded.frame.success, decoded.frame.message) == (3, False, "no")
    assert decoded.extra == {"output": "e", "exit_code": 2}


def test_ack_without_extras_takes_the_fast_path() -> None:
    """A plain ack is an ``AckIn`` with empty ``extra``."""
    decoded = decode_agent_frame('{"type": "ack", "id": 4, "success": true}')
    assert isinstance(decoded, AckIn) and decoded.extra == {} and decoded.frame.message == ""


def test_hello_and_heartbeat_decode_to_their_frames() -> None:
    """Hello and heartbeat come back as their own structs."""
    hello = decode_agent_frame(_raw(type="hello", protocol=1, device_id="a-1", capabilities=["stored_acks"]))
    assert isinstance(hello, Hello) and hello.device_id == "a-1" and hello.capabilities == ["stored_acks"]
    assert isinstance(decode_agent_frame('{"type": "heartbeat"}'), Heartbeat)


def test_ingest_body_keeps_extra_fields() -> None:
    """``POST /ingest`` is decoded by the same sample definition; unnamed fields are kept."""
    device, fields, extra = parse_ingest(_raw(device_id="web-1", cpu=1.5, uptime_sec=9, fan_rpm=800))
    assert device == "web-1" and fields["cpu"] == 1.5 and fields["uptime_sec"] == 9
    assert extra == {"fan_rpm": 800}
    device, fields, extra = parse_ingest(_raw(device_id="web-1", cpu=2.0))
    assert device == "web-1" and fields["cpu"] == 2.0 and extra == {}
    assert set(fields) == SAMPLE_FIELDS  # both paths name every field


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{"cpu": 1}', FrameValidationError),
        (b'{"device_id": "bad id/with slash", "cpu": 1}', FrameValidationError),
        (b'{"device_id": "d", "uptime_sec": 18446744073709551615}', FrameValidationError),
        (b'{"device_id": "d", "cpu": 1e999}', FrameDecodeError),
        (b"[1]", FrameDecodeError),
    ],
)
def test_ingest_errors_are_typed(raw: bytes, error: type[ProtocolError]) -> None:
    """A bad ``/ingest`` body raises the ProtocolError subclass whose ``code`` names the problem."""
    with pytest.raises(error):
        parse_ingest(raw)


@pytest.mark.parametrize(
    ("raw", "error", "code"),
    [
        (b"{", FrameDecodeError, ErrorCode.INVALID_JSON),
        (b"\xff\xfe", FrameDecodeError, ErrorCode.INVALID_JSON),
        (b"42", FrameDecodeError, ErrorCode.INVALID_JSON),
        (b"[]", FrameDecodeError, ErrorCode.INVALID_JSON),
        (b'{"type": "nope"}', UnknownFrameError, ErrorCode.UNKNOWN_TYPE),
        (b'{"type": 5}', UnknownFrameError, ErrorCode.UNKNOWN_TYPE),
        (b'{"cpu": 1}', UnknownFrameError, ErrorCode.UNKNOWN_TYPE),
        (b'{"type": "welcome"}', UnknownFrameError, ErrorCode.UNKNOWN_TYPE),  # a hub frame
        (b'{"type": "metrics", "cpu": "hot"}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "metrics", "cpu": true}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "metrics", "status": "meh"}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "metrics", "ts": 1e18}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "metrics", "ts": "yesterday"}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "metrics", "seq": -1, "cpu": 1}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "metrics", "seq": true, "cpu": 1}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "hello", "protocol": 1, "device_id": "bad id/x"}', FrameValidationError, "invalid_frame"),
        (b'{"type": "hello", "device_id": "a"}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "ack", "id": 1, "success": 1}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "ack", "id": 1}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "metrics_batch", "samples": {}}', FrameValidationError, ErrorCode.INVALID_FRAME),
        (b'{"type": "metrics_batch", "samples": [], "x": 1}', FrameValidationError, ErrorCode.INVALID_FRAME),
    ],
)
def test_decode_errors_are_typed(raw: bytes, error: type[ProtocolError], code: str) -> None:
    """Each kind of bad frame raises its own ProtocolError subclass; its ``code`` goes in the error frame."""
    with pytest.raises(error) as caught:
        decode_agent_frame(raw)
    assert caught.value.code == code and str(caught.value)


def test_decode_errors_are_value_errors_where_they_resemble_one() -> None:
    """Bad JSON and bad fields are also ValueErrors; an unknown type is only a ProtocolError."""
    assert issubclass(FrameDecodeError, ValueError) and issubclass(FrameValidationError, ValueError)
    assert not issubclass(UnknownFrameError, ValueError)


# Bounds: validation refuses whatever the store could not write


@pytest.mark.parametrize("value", [INT64_MAX, INT64_MIN, 0])
def test_int64_bounds_are_accepted(value: int) -> None:
    """Integers that fit signed 64 bits are accepted, both ends included."""
    assert _fields(_samples(_raw(type="metrics", uptime_sec=value, mem_total=value)))["uptime_sec"] == value


@pytest.mark.parametrize("value", [2**64 - 1, INT64_MAX + 1, INT64_MIN - 1, 10**30])
def test_integers_beyond_int64_are_refused(value: int) -> None:
    """``uptime_sec: 18446744073709551615`` and friends cannot be stored: refused as invalid_frame."""
    with pytest.raises(FrameValidationError, match="uptime_sec"):
        decode_agent_frame(_raw(type="metrics", uptime_sec=value))


@pytest.mark.parametrize("literal", [b"1e999", b"-1e999", b"1e400"])
def test_non_finite_floats_are_refused(literal: bytes) -> None:
    """A float literal that overflows to infinity is refused (JSON has no NaN or Infinity)."""
    with pytest.raises(ProtocolError):
        decode_agent_frame(b'{"type": "metrics", "cpu": ' + literal + b"}")
    with pytest.raises(ProtocolError):
        decode_agent_frame(b'{"type": "metrics", "cpu": NaN}')


def test_largest_finite_float_is_accepted() -> None:
    """The largest double is still a finite float and is accepted."""
    assert _fields(_samples(b'{"type": "metrics", "net_rx_bps": 1.7976931348623157e308}'))["net_rx_bps"] > 0


@pytest.mark.parametrize(
    ("field", "limit"), [("hostname", 255), ("agent_version", 255), ("last_error", 65536)]
)
def test_too_long_strings_are_refused(field: str, limit: int) -> None:
    """A string at its limit is accepted; one character more is refused, naming the field."""
    assert _fields(_samples(_raw(type="metrics", **{field: "x" * limit})))[field] == "x" * limit
    with pytest.raises(FrameValidationError, match=field):
        decode_agent_frame(_raw(type="metrics", **{field: "x" * (limit + 1)}))


def test_too_long_hello_fields_are_refused() -> None:
    """Hello's names and capabilities have length limits too."""
    with pytest.raises(FrameValidationError, match="hostname"):
        decode_agent_frame(_raw(type="hello", protocol=1, device_id="a", hostname="h" * 256))
    with pytest.raises(FrameValidationError, match="capabilities"):
        decode_agent_frame(_raw(type="hello", protocol=1, device_id="a", capabilities=["c" * 256]))
    with pytest.raises(FrameValidationError, match="device_id"):
        decode_agent_frame(_raw(type="hello", protocol=1, device_id="d" * 129))


def test_batch_of_max_size_is_accepted_one_more_is_refused() -> None:
    """A batch holds at most 1000 samples; 1001 refuses the whole frame (with or without extras)."""
    full = [{"cpu": 1.0}] * MAX_BATCH
    assert len(_samples(json.dumps({"type": "metrics_batch", "seq": 1, "samples": full})).valid) == MAX_BATCH
    for sample in ({"cpu": 1.0}, {"cpu": 1.0, "fan": 1}):
        frame = {"type": "metrics_batch", "seq": 1, "samples": [sample] * (MAX_BATCH + 1)}
        with pytest.raises(FrameValidationError, match="1000"):
            decode_agent_frame(json.dumps(frame))


def test_one_invalid_sample_of_a_batch_is_refused_alone() -> None:
    """The valid samples of a batch come through; the invalid one is a RefusedSample with its seq."""
    frame = {
        "type": "metrics_batch",
        "seq": 1,
        "samples": [
            {"ts": NOW, "cpu": 1.0},
            {"ts": NOW + 1, "uptime_sec": 2**64 - 1},
            {"ts": NOW + 2, "cpu": 3.0},
        ],
    }
    decoded = _samples(json.dumps(frame))
    assert [s.seq for s in decoded.valid] == [1, 3]
    assert [_fields(decoded, i)["cpu"] for i in range(2)] == [1.0, 3.0]
    (refused,) = decoded.refused
    assert isinstance(refused, RefusedSample) and refused.seq == 2
    assert "samples[1]" in refused.message and "uptime_sec" in refused.message
    assert decoded.last_seq == 3


def test_a_sample_that_is_not_an_object_is_refused_alone() -> None:
    """A non-object element of ``samples`` is refused by its seq; the others are kept."""
    decoded = _samples(json.dumps({"type": "metrics_batch", "seq": 5, "samples": [{"cpu": 1}, 7]}))
    assert [s.seq for s in decoded.valid] == [5]
    assert [r.seq for r in decoded.refused] == [6] and decoded.last_seq == 6


def test_invalid_sample_of_a_batch_without_seq_is_refused_alone() -> None:
    """Without ``seq`` a batch's invalid sample is still refused alone (named by no number)."""
    decoded = _samples(json.dumps({"type": "metrics_batch", "samples": [{"ts": -1}, {"cpu": 2}]}))
    assert [s.seq for s in decoded.valid] == [None] and [r.seq for r in decoded.refused] == [None]


def test_invalid_single_sample_with_seq_is_refused_by_seq() -> None:
    """An invalid ``metrics`` frame with a ``seq`` is a RefusedSample, so the agent can drop it."""
    decoded = _samples(_raw(type="metrics", seq=4, uptime_sec=2**64 - 1))
    assert decoded.valid == [] and [r.seq for r in decoded.refused] == [4] and decoded.last_seq == 4


def test_invalid_single_sample_without_seq_raises() -> None:
    """Without a ``seq`` there is nothing to name: the frame is refused as invalid_frame."""
    with pytest.raises(FrameValidationError):
        decode_agent_frame(_raw(type="metrics", uptime_sec=2**64 - 1))


@pytest.mark.parametrize("value", [10**30, -(2**63) - 1])
def test_extra_fields_the_store_cannot_write_are_refused(value: int) -> None:
    """An unnamed field holding an integer beyond 64 bits is refused like a named one."""
    decoded = decode_agent_frame(_raw(type="metrics", seq=1, cpu=1.0, fan_rpm=value))
    assert isinstance(decoded, Samples) and decoded.valid == [] and [r.seq for r in decoded.refused] == [1]


# Properties

_floats = st.floats(allow_nan=False, allow_infinity=False)
_ints = st.integers(min_value=-(2**65), max_value=2**65) | st.sampled_from(
    [INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 2**64 - 1]
)
_json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _floats | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _kind(field: msgspec.inspect.Field) -> msgspec.inspect.Type:
    """The one non-null type a sample field may hold (``ts`` aside)."""
    assert isinstance(field.type, msgspec.inspect.UnionType), field
    (kind,) = [t for t in field.type.types if not isinstance(t, msgspec.inspect.NoneType)]
    return kind


_SAMPLE_INFO = msgspec.inspect.type_info(struct_of(SampleFields, tagged=False))  # what the hub decodes
assert isinstance(_SAMPLE_INFO, msgspec.inspect.StructType)
_SAMPLE_KINDS = {f.name: _kind(f) for f in _SAMPLE_INFO.fields if f.name != "ts"}


def test_every_named_sample_field_is_bounded_for_the_store() -> None:
    """Each integer field fits int64, each float is finite, each string has a length limit."""
    for name, kind in _SAMPLE_KINDS.items():
        if isinstance(kind, msgspec.inspect.IntType):
            assert (kind.ge, kind.le) == (INT64_MIN, INT64_MAX), name
        elif isinstance(kind, msgspec.inspect.FloatType):
            assert kind.ge == -sys.float_info.max and kind.le == sys.float_info.max, name
        elif isinstance(kind, msgspec.inspect.StrType):
            assert kind.max_length is not None, name
        else:
            assert isinstance(kind, msgspec.inspect.LiteralType), name


def _values_for(kind: msgspec.inspect.Type) -> st.SearchStrategy[Any]:
    """Valid values of ``kind`` and values just past its bounds."""
    if isinstance(kind, msgspec.inspect.IntType):
        return _ints | st.none()
    if isinstance(kind, msgspec.inspect.FloatType):
        return _floats | st.integers(-(2**53), 2**53) | st.none()
    if isinstance(kind, msgspec.inspect.StrType):
        assert kind.max_length is not None
        too_long = "x" * (kind.max_length + 1)
        return st.text(max_size=20) | st.sampled_from(["x" * kind.max_length, too_long]) | st.integers(0, 9)
    assert isinstance(kind, msgspec.inspect.LiteralType)
    return st.sampled_from([*kind.values, "other"])


def _field_values() -> st.SearchStrategy[dict[str, Any]]:
    """Samples whose named fields are valid or just past a bound, in any combination."""
    values = {name: _values_for(kind) for name, kind in _SAMPLE_KINDS.items()}
    values["ts"] = st.floats(min_value=-1e10, max_value=1e10) | st.sampled_from(["2026-01-01T00:00:00Z", "x"])
    return st.fixed_dictionaries({}, optional=values)


def _int_fits(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


@given(_ints)
def test_integer_fields_accept_exactly_int64(value: int) -> None:
    """Any integer is accepted in ``uptime_sec`` exactly when it fits signed 64 bits."""
    try:
        accepted = _fields(_samples(_raw(type="metrics", uptime_sec=value)))["uptime_sec"] == value
    except FrameValidationError:
        accepted = False
    assert accepted == _int_fits(value)


@given(_field_values())
def test_fast_and_slow_paths_agree(sample: dict[str, Any]) -> None:
    """A sample is accepted or refused the same with or without an unnamed field (two code paths)."""
    plain = _samples(_raw(type="metrics", seq=1, **sample))
    with_extra = _samples(_raw(type="metrics", seq=1, **sample, zz_extra=1))
    assert bool(plain.valid) == bool(with_extra.valid)
    if plain.valid:
        assert _fields(plain) == _fields(with_extra)
        assert with_extra.valid[0].extra == {"zz_extra": 1}


@given(_field_values())
def test_fields_are_the_set_ones_on_both_paths_in_a_frame_and_in_a_batch(sample: dict[str, Any]) -> None:
    """``ReceivedSample.fields``: the named fields set plus the unnamed ones, the same whichever
    path decoded them, without the frame's own ``type`` and ``seq``."""
    plain = _samples(_raw(type="metrics", seq=1, **sample))
    if not plain.valid:
        return
    with_extra = _samples(_raw(type="metrics", seq=1, **sample, zz_extra=1))
    batch = _samples(json.dumps({"type": "metrics_batch", "seq": 1, "samples": [sample]}))
    assert plain.valid[0].fields() == _fields(plain) == batch.valid[0].fields()
    assert with_extra.valid[0].fields() == {**_fields(plain), "zz_extra": 1}


@given(_field_values())
def test_agent_validation_agrees_with_the_hub(sample: dict[str, Any]) -> None:
    """The agent's pre-send check (``protocol.plain``) refuses exactly what the hub's decoder refuses."""
    try:
        split_sample(json.loads(json.dumps(sample)))
        agent_accepts = True
    except FrameValidationError:
        agent_accepts = False
    assert agent_accepts == bool(_samples(_raw(type="metrics", seq=1, **sample)).valid)


@given(st.lists(st.booleans(), max_size=30), st.integers(0, 2**40))
def test_batch_refusals_partition_the_seqs(valid: list[bool], first: int) -> None:
    """Every seq of a batch is either a valid sample or a refused one, in order, none twice."""
    samples = [{"cpu": float(i)} if ok else {"cpu": float(i), "procs": 2**64} for i, ok in enumerate(valid)]
    decoded = _samples(json.dumps({"type": "metrics_batch", "seq": first, "samples": samples}))
    expected = range(first, first + len(valid))
    assert [s.seq for s in decoded.valid] == [seq for seq, ok in zip(expected, valid, strict=True) if ok]
    assert [r.seq for r in decoded.refused] == [
        seq for seq, ok in zip(expected, valid, strict=True) if not ok
    ]
    assert decoded.last_seq == (expected[-1] if valid else None)


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_decode_never_raises_anything_else(data: bytes | str) -> None:
    """Arbitrary bytes either decode or raise a ProtocolError, never another exception."""
    with contextlib.suppress(ProtocolError):
        decode_agent_frame(data)


@given(
    st.sampled_from(["hello", "metrics", "metrics_batch", "ack", "heartbeat", "nope"]),
    st.dictionaries(
        st.sampled_from(["protocol", "device_id", "seq", "samples", "id", "success", "cpu", "ts", "x"]),
        _json,
        max_size=5,
    ),
)
def test_decode_of_json_objects_never_raises_anything_else(kind: str, fields: dict[str, Any]) -> None:
    """Objects with a known type and arbitrary fields decode or raise a ProtocolError, nothing else."""
    with contextlib.suppress(ProtocolError):
        decode_agent_frame(json.dumps({**fields, "type": kind}))


# Encoding what the hub sends

_text = st.text(max_size=40)
_int64 = st.integers(INT64_MIN, INT64_MAX)
_hub_frames = st.one_of(
    st.builds(
        Welcome,
        protocol=st.just(1),
        device_id=_text,
        heartbeat_interval=_floats,
        ping_interval=_floats,
        ping_timeout=_floats,
        max_frame_bytes=_int64,
        server_time=_text,
    ),
    st.builds(
        CommandFrame,
        id=_int64,
        command=_text,
        args=st.none() | st.dictionaries(_text, _json, max_size=4),
        created_at=_text,
    ),
    st.builds(Acked, id=_int64),
    st.builds(Stored, seq=st.integers(0, INT64_MAX)),
    st.builds(
        ErrorFrame,
        code=st.sampled_from(list(ErrorCode)).map(str) | _text,
        message=_text,
        id=st.none() | _int64,
        seq=st.none() | st.integers(0, INT64_MAX),
    ),
)


@given(_hub_frames)
def test_every_hub_frame_round_trips(frame: Welcome | CommandFrame | Acked | Stored | ErrorFrame) -> None:
    """Any hub frame encodes to JSON the agent side decodes back to an equal frame."""
    text = encode(frame)
    assert json.loads(text)["type"] == type(frame).TYPE
    assert decode_hub_frame(text) == frame


def test_hub_frames_encode_their_wire_form() -> None:
    """Frames carry their ``type``; fields left at their default (``None``) are not sent."""
    assert json.loads(encode(Stored(seq=3))) == {"type": "stored", "seq": 3}
    error = json.loads(encode(ErrorFrame(code=ErrorCode.INVALID_SAMPLE, message="bad", seq=2)))
    assert error == {"type": "error", "code": "invalid_sample", "message": "bad", "seq": 2}
    command = CommandFrame(id=9, command="echo", args={"x": [1, 2]}, created_at=to_iso(0))
    assert decode_hub_frame(encode(command)) == command


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{", FrameDecodeError),
        (b'{"type": "metrics"}', UnknownFrameError),  # an agent frame
        (b'{"type": "stored"}', FrameValidationError),
        (b'{"type": "acked", "id": "1"}', FrameValidationError),
    ],
)
def test_hub_frame_decode_errors_are_typed(raw: bytes, error: type[ProtocolError]) -> None:
    """The agent's decoder refuses bad hub frames with the same exception tree."""
    with pytest.raises(error):
        decode_hub_frame(raw)


# Time and the command lifecycle


def test_timestamps() -> None:
    """ISO-8601 (with Z or offset, or naive as UTC) and epoch seconds mean the same instant."""
    assert to_epoch("1970-01-01T00:01:00Z") == 60.0
    assert to_epoch("1970-01-01T01:01:00+01:00") == 60.0
    assert to_epoch("1970-01-01T00:01:00") == 60.0
    assert to_epoch(60) == 60.0
    assert to_iso(60) == "1970-01-01T00:01:00Z"


def test_sample_times_in_iso_or_epoch_are_accepted() -> None:
    """A sample's ``ts`` may be ISO-8601 or epoch seconds between 1970 and 2100; both are kept as sent."""
    assert _fields(_samples(_raw(type="metrics", ts="2026-01-01T00:00:00Z")))["ts"] == "2026-01-01T00:00:00Z"
    assert _fields(_samples(_raw(type="metrics", ts=NOW)))["ts"] == NOW
    with pytest.raises(FrameValidationError, match="ts"):
        decode_agent_frame(_raw(type="metrics", ts="2101-01-01T00:00:00Z"))


def test_command_lifecycle() -> None:
    """pending -> delivered (repeatable) -> acked; nothing leaves acked or cancelled."""
    state = transition(CommandState.PENDING, CommandState.DELIVERED)
    state = transition(state, CommandState.DELIVERED)
    assert is_open(state)
    state = transition(state, CommandState.ACKED)
    assert not is_open(state)
    for target in CommandState:
        with pytest.raises(IllegalTransition):
            transition(CommandState.ACKED, target)
        with pytest.raises(IllegalTransition):
            transition(CommandState.CANCELLED, target)
    assert transition(CommandState.PENDING, CommandState.CANCELLED) is CommandState.CANCELLED


def test_illegal_transition_is_a_value_error() -> None:
    """Misuse errors also inherit the builtin they resemble."""
    with pytest.raises(ValueError, match="acked"):
        transition(CommandState.ACKED, CommandState.PENDING)


def test_binary_frame_that_is_not_utf8_is_a_decode_error() -> None:
    """Bytes that are not UTF-8 (a binary frame) raise FrameDecodeError, never UnicodeDecodeError."""
    with pytest.raises(FrameDecodeError):
        decode_agent_frame(b'{"type": "metrics", "hostname": "\xff"}')


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cpu": "x"}, "Expected `float`, got `str` - at `$.cpu`"),
        (
            {"uptime_sec": 2**63},
            "Expected a value <= 9.22337e+18, got 9223372036854775808 - at `$.uptime_sec`",
        ),
        ({"status": "bad"}, "Expected `one of 'ok', 'error'`, got `str` - at `$.status`"),
        ({"ts": True}, "Invalid value True - at `$.ts`"),
        ({"cpu": float("nan")}, "Expected a value >= -1.79769e+308, got nan - at `$.cpu`"),
        ({"mem_used": 1.5}, "Expected `int`, got `float` - at `$.mem_used`"),
        (
            {"ts": "2101-01-01T00:00:00Z"},
            "ts: expected a time between 1970 and 2100, got '2101-01-01T00:00:00Z' - at `$`",
        ),
    ],
)
def test_the_agents_validator_names_the_field_and_the_rule(values: dict[str, Any], message: str) -> None:
    """What an agent logs when it drops a spooled sample: the same words since the validator was
    compiled per type hint (checked against the previous one on 24,000 generated frames)."""
    with pytest.raises(FrameValidationError) as refused:
        split_sample(values)
    assert str(refused.value) == message
