"""The agent's pydantic-free codec (protocol.wire) agrees with the hub's pydantic models."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from protocol import codec, frames, wire
from protocol.errors import FrameDecodeError, FrameValidationError, ProtocolError, UnknownFrameError

PAIRS: list[tuple[Any, type[BaseModel]]] = [
    (wire.SampleFields, frames.SampleFields),
    (wire.Metrics, frames.Metrics),
    (wire.MetricsBatch, frames.MetricsBatch),
    (wire.Hello, frames.Hello),
    (wire.Ack, frames.Ack),
    (wire.Heartbeat, frames.Heartbeat),
    (wire.Welcome, frames.Welcome),
    (wire.CommandFrame, frames.CommandFrame),
    (wire.Acked, frames.Acked),
    (wire.ErrorFrame, frames.ErrorFrame),
]

INT64 = st.integers(-(2**63), 2**63 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    st.none() | st.booleans() | INT64 | FINITE | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
# Wrong-typed values too: the light codec must refuse whatever the models refuse.
ANY_VALUE = JSON | st.floats() | st.sampled_from(["3", "1.5", "ok", "error", "true", ""])


def light_values(frame: Any) -> dict[str, Any]:
    """A light frame as the model would dump it with exclude_none (extras flattened)."""
    values = {f.name: getattr(frame, f.name) for f in dataclasses.fields(frame) if f.name != "extra"}
    values.update(getattr(frame, "extra", {}))
    if "samples" in values:
        values["samples"] = [light_values(s) for s in values["samples"]]
    if "capabilities" in values:
        values["capabilities"] = list(values["capabilities"])
    return {k: v for k, v in values.items() if v is not None}


def hub_sees(text: str) -> dict[str, Any]:
    """What the hub's pydantic decoder makes of an agent frame."""
    return codec.decode_agent_frame(text).model_dump(exclude_none=True)


@pytest.mark.parametrize(("light", "model"), PAIRS, ids=lambda c: getattr(c, "__name__", ""))
def test_field_sets_are_the_models_fields(light: Any, model: type[BaseModel]) -> None:
    """Each light dataclass has exactly the model's fields, plus ``extra`` where the model allows extras."""
    names = {f.name for f in dataclasses.fields(light)}
    allows_extra = model.model_config.get("extra") == "allow"
    assert names - {"extra"} == set(model.model_fields)
    assert ("extra" in names) == allows_extra


@pytest.mark.parametrize(("light", "model"), PAIRS[6:], ids=lambda c: getattr(c, "__name__", ""))
def test_hub_frame_checks_and_required_fields_match(light: Any, model: type[BaseModel]) -> None:
    """The light decoder checks every field but ``type`` and requires those the model requires."""
    kind = model.model_fields["type"].default
    assert set(light.CHECKS) | {"type"} == set(model.model_fields)
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    assert wire._REQUIRED[kind] == required


def test_sample_checks_cover_the_model() -> None:
    """Every sample field the model names is checked by the light codec."""
    assert set(wire._SAMPLE_CHECKS) == set(frames.SampleFields.model_fields)


# --- hub -> agent ---

HUB_MODELS = st.one_of(
    st.builds(
        frames.Welcome,
        protocol=INT64,
        device_id=st.text(),
        heartbeat_interval=FINITE,
        ping_interval=FINITE,
        ping_timeout=FINITE,
        max_frame_bytes=INT64,
        server_time=st.text(),
    ),
    st.builds(
        frames.CommandFrame,
        id=INT64,
        command=st.text(),
        args=st.none() | st.dictionaries(st.text(max_size=5), JSON, max_size=4),
        created_at=st.text(),
    ),
    st.builds(frames.Acked, id=INT64),
    st.builds(frames.ErrorFrame, code=st.text(), message=st.text(), id=st.none() | INT64),
)


@given(HUB_MODELS)
def test_every_hub_frame_decodes_identically(model: BaseModel) -> None:
    """A frame the hub encodes decodes with the light codec to the same values."""
    text = codec.encode(model)
    light = wire.decode_hub_frame(text)
    assert type(light).__name__ == type(model).__name__
    assert light_values(light) == model.model_dump(exclude_none=True)


def decode_both(data: bytes) -> tuple[Any, Any]:
    """(light result or exception type, model result or exception type)."""
    results: list[Any] = []
    for decode in (wire.decode_hub_frame, codec.decode_hub_frame):
        try:
            results.append(decode(data))
        except ProtocolError as exc:
            results.append(type(exc))
    return results[0], results[1]


HUB_KEYS = st.sampled_from(
    [
        "type",
        "protocol",
        "device_id",
        "heartbeat_interval",
        "ping_interval",
        "ping_timeout",
        "max_frame_bytes",
        "server_time",
        "id",
        "command",
        "args",
        "created_at",
        "code",
        "message",
        "other",
    ]
)
HUB_OBJECTS = st.dictionaries(HUB_KEYS, ANY_VALUE, max_size=9)


@given(st.sampled_from(["welcome", "command", "acked", "error", "hello", "nope"]), HUB_OBJECTS)
def test_light_decoder_is_never_more_lenient(kind: str, obj: dict[str, Any]) -> None:
    """What the models refuse is refused with the same error; what it accepts, they accept alike."""
    obj["type"] = kind
    light, model = decode_both(orjson.dumps(obj))
    if isinstance(model, type):
        assert light is model
    elif not isinstance(light, type):
        assert light_values(light) == model.model_dump(exclude_none=True)
    else:
        assert light is FrameValidationError  # a lax conversion ("3" as a number) we skip


@given(st.binary(max_size=100) | st.text(max_size=100).map(str.encode))
def test_malformed_input_raises_the_same_error(data: bytes) -> None:
    """Not JSON, not an object, or an unknown type: both codecs raise the same exception."""
    light, model = decode_both(data)
    if isinstance(model, type):
        assert light is model


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{", FrameDecodeError),
        (b"[1]", FrameDecodeError),
        (b'{"type": "hello"}', UnknownFrameError),
        (b'{"type": "acked"}', FrameValidationError),
        (b'{"type": "acked", "id": "x"}', FrameValidationError),
        (b'{"type": "acked", "id": 1, "more": 2}', FrameValidationError),
        (
            b'{"type": "command", "id": 1, "command": "c", "created_at": "t", "args": [1]}',
            FrameValidationError,
        ),
    ],
)
def test_light_decode_errors_are_typed(raw: bytes, error: type[ProtocolError]) -> None:
    """Each kind of bad hub frame raises its own ProtocolError subclass, naming the field."""
    with pytest.raises(error) as caught:
        wire.decode_hub_frame(raw)
    assert str(caught.value)


# --- agent -> hub ---

SAMPLE_KEYS = sorted(wire._SAMPLE_CHECKS)
EXTRA_KEYS = st.text(max_size=8).filter(lambda k: k not in wire._SAMPLE_CHECKS and k != "type")
SAMPLES = st.builds(
    lambda known, extra: {**extra, **known},
    st.dictionaries(st.sampled_from(SAMPLE_KEYS), ANY_VALUE, max_size=8),
    st.dictionaries(EXTRA_KEYS, JSON, max_size=3),
)


@given(SAMPLES)
def test_samples_validate_as_the_model_does(sample: dict[str, Any]) -> None:
    """A sample the light codec accepts reaches the hub unchanged; one the model refuses, it refuses."""
    try:
        frames.SampleFields.model_validate(sample)
    except ValidationError:
        with pytest.raises(FrameValidationError):
            wire.SampleFields.from_mapping(sample)
        return
    try:
        light = wire.SampleFields.from_mapping(sample)
    except FrameValidationError:
        return  # a lax conversion ("3" as a number) the agent never needs
    metrics = wire.Metrics.of(light)
    pydantic_text = codec.encode(frames.Metrics.model_validate({**sample, "type": "metrics"}))
    assert hub_sees(wire.encode(metrics)) == hub_sees(pydantic_text) == light_values(metrics)


@given(st.lists(SAMPLES, min_size=1, max_size=5))
def test_batches_reach_the_hub_unchanged(samples: list[dict[str, Any]]) -> None:
    """A metrics_batch of valid samples validates on the hub to the light values."""
    light: list[wire.SampleFields] = []
    for sample in samples:
        try:
            light.append(wire.SampleFields.from_mapping(sample))
        except FrameValidationError:
            continue
    batch = wire.MetricsBatch(samples=tuple(light))
    assert hub_sees(wire.encode(batch)) == light_values(batch)


def test_batch_size_is_limited_like_the_model() -> None:
    """More than 1000 samples is refused on both sides."""
    many = tuple(wire.SampleFields() for _ in range(wire.MAX_BATCH + 1))
    with pytest.raises(FrameValidationError):
        wire.MetricsBatch(samples=many)
    with pytest.raises(ValidationError):
        frames.MetricsBatch(samples=[frames.SampleFields()] * (wire.MAX_BATCH + 1))


DEVICE_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", fullmatch=True) | st.text(max_size=130)


@given(
    DEVICE_IDS,
    INT64,
    st.text(max_size=10),
    st.text(max_size=10),
    st.text(max_size=10),
    st.lists(st.text(max_size=8), max_size=4),
)
def test_hello_matches_the_model(
    device_id: str, protocol: int, version: str, host: str, platform: str, caps: list[str]
) -> None:
    """A hello is refused for the same device ids and otherwise validates to the same values."""
    fields: dict[str, Any] = {
        "protocol": protocol,
        "device_id": device_id,
        "agent_version": version,
        "hostname": host,
        "platform": platform,
    }
    try:
        model = frames.Hello(**fields, capabilities=caps)
    except ValidationError:
        with pytest.raises(FrameValidationError):
            wire.Hello(**fields, capabilities=tuple(caps))
        return
    light = wire.Hello(**fields, capabilities=tuple(caps))
    assert hub_sees(wire.encode(light)) == hub_sees(codec.encode(model)) == light_values(light)


ACK_EXTRA = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k not in {"type", "id", "success", "message"}), JSON, max_size=3
)


@given(INT64, st.booleans(), st.text(max_size=20), ACK_EXTRA)
def test_ack_matches_the_model(command_id: int, success: bool, message: str, extra: dict[str, Any]) -> None:
    """An ack with extra result fields reaches the hub exactly as the model would send it."""
    light = wire.Ack(id=command_id, success=success, message=message, extra=extra)
    model = frames.Ack(id=command_id, success=success, message=message, **extra)
    assert hub_sees(wire.encode(light)) == hub_sees(codec.encode(model)) == light_values(light)


def test_heartbeat_matches_the_model() -> None:
    """The heartbeat is the same JSON from both codecs."""
    assert orjson.loads(wire.encode(wire.Heartbeat())) == orjson.loads(codec.encode(frames.Heartbeat()))


def test_encode_gives_text() -> None:
    """Frames go out as text messages, as codec.encode's do."""
    assert isinstance(wire.encode(wire.Heartbeat()), str)
