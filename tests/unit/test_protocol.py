"""Protocol v1 as pure data: decoding, encoding, the command lifecycle, and no I/O imports."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    Ack,
    CommandFrame,
    CommandState,
    FrameDecodeError,
    FrameValidationError,
    IllegalTransition,
    Metrics,
    MetricsBatch,
    ProtocolError,
    UnknownFrameError,
    decode_agent_frame,
    decode_hub_frame,
    encode,
    is_open,
    to_epoch,
    to_iso,
    transition,
)


def test_protocol_imports_nothing_async_or_networked() -> None:
    """Importing ``protocol`` loads no asyncio, starlette, websockets, aiosqlite, psutil, uvicorn, settings.

    The whole surface, and the hub/agent split, are in test_layering.py and `make lint` (lint-imports).
    """
    code = (
        "import sys, protocol; "
        "bad = {'asyncio', 'starlette', 'websockets', 'aiosqlite', 'psutil', 'uvicorn', 'httpx', "
        "'pydantic_settings'}; "
        "print(sorted(bad & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metrics_keep_extra_fields() -> None:
    """Unknown metric fields ride along instead of being rejected."""
    frame = decode_agent_frame(b'{"type": "metrics", "cpu": 3.5, "fan_rpm": 900}')
    assert isinstance(frame, Metrics)
    assert frame.cpu == 3.5 and frame.model_extra == {"fan_rpm": 900}


def test_batch_and_ack_decode() -> None:
    """A metrics batch and an ack with extra output decode to their models."""
    batch = decode_agent_frame(json.dumps({"type": "metrics_batch", "samples": [{"ts": 1.0, "cpu": 1}]}))
    assert isinstance(batch, MetricsBatch) and batch.samples[0].ts == 1.0
    ack = decode_agent_frame('{"type": "ack", "id": 3, "success": false, "message": "no", "output": "e"}')
    assert isinstance(ack, Ack) and ack.model_extra == {"output": "e"}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{", FrameDecodeError),
        (b"42", FrameDecodeError),
        (b'{"type": "nope"}', UnknownFrameError),
        (b'{"type": "metrics", "cpu": "hot"}', FrameValidationError),
        (b'{"type": "hello", "protocol": 1, "device_id": "bad id/with slash"}', FrameValidationError),
        (b'{"type": "heartbeat", "extra": 1}', FrameValidationError),
        (b'{"type": "metrics", "ts": 1e18}', FrameValidationError),
        (b'{"type": "metrics", "ts": "yesterday"}', FrameValidationError),
        (b'{"type": "metrics_batch", "samples": [{"ts": -1}]}', FrameValidationError),
        (b'{"type": "metrics", "net_rx_bps": 1e400}', FrameDecodeError),
    ],
)
def test_decode_errors_are_typed(raw: bytes, error: type[ProtocolError]) -> None:
    """Each kind of bad frame raises its own ProtocolError subclass with a message."""
    with pytest.raises(error) as caught:
        decode_agent_frame(raw)
    assert str(caught.value)


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_decode_never_raises_anything_else(data: bytes | str) -> None:
    """Arbitrary input either decodes or raises a ProtocolError, never another exception."""
    with contextlib.suppress(ProtocolError):
        decode_agent_frame(data)


def test_hub_frames_roundtrip() -> None:
    """A command frame encodes to JSON the agent side decodes back to the same frame."""
    frame = CommandFrame(id=9, command="echo", args={"x": [1, 2]}, created_at=to_iso(0))
    assert decode_hub_frame(encode(frame)) == frame


def test_timestamps() -> None:
    """ISO-8601 (with Z or offset, or naive as UTC) and epoch seconds mean the same instant."""
    assert to_epoch("1970-01-01T00:01:00Z") == 60.0
    assert to_epoch("1970-01-01T01:01:00+01:00") == 60.0
    assert to_epoch("1970-01-01T00:01:00") == 60.0
    assert to_epoch(60) == 60.0
    assert to_iso(60) == "1970-01-01T00:01:00Z"


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
