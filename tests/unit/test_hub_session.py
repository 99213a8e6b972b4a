"""The hub's session rules (``protocol.hub_session``) fed frames: no event loop, no socket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import AckIn, Samples
from protocol.codes import Capability, CloseCode, ErrorCode
from protocol.frames import PROTOCOL_VERSION, Welcome
from protocol.hub_session import (
    MAX_BAD_FRAMES,
    CloseRequested,
    HelloAccepted,
    HubSession,
    SessionState,
)

WELCOME = Welcome(
    protocol=PROTOCOL_VERSION,
    device_id="dev-1",
    heartbeat_interval=5.0,
    ping_interval=5.0,
    ping_timeout=5.0,
    max_frame_bytes=1 << 20,
    server_time="2026-01-01T00:00:00Z",
)
BAD_FRAME = '{"type": "nope"}'


def hello(protocol: int = PROTOCOL_VERSION, capabilities: list[str] | None = None) -> str:
    return json.dumps(
        {
            "type": "hello",
            "protocol": protocol,
            "device_id": "dev-1",
            "agent_version": "1.0",
            "capabilities": capabilities if capabilities is not None else ["echo"],
        }
    )


def metrics(seq: int | None = None, **fields: Any) -> str:
    frame = {"type": "metrics", "cpu": 1.0, **fields}
    if seq is not None:
        frame["seq"] = seq
    return json.dumps(frame)


def batch(seq: int, samples: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "metrics_batch", "seq": seq, "samples": samples})


def sent(session: HubSession) -> list[dict[str, Any]]:
    """What the I/O loop would send now, parsed."""
    return [json.loads(text) for text in session.data_to_send()]


def opened(*, stored_acks: bool = True) -> HubSession:
    """A session past hello and welcome, with nothing left to send."""
    session = HubSession()
    caps = [Capability.STORED_ACKS.value] if stored_acks else []
    (event,) = session.receive(hello(capabilities=caps))
    assert isinstance(event, HelloAccepted)
    session.welcome(WELCOME)
    session.data_to_send()
    return session


# Hello


def test_valid_hello_is_accepted() -> None:
    """A first frame that is a hello of this protocol version yields HelloAccepted and sends nothing yet."""
    session = HubSession()
    (event,) = session.receive(hello(capabilities=["echo", "stored_acks"]))
    assert isinstance(event, HelloAccepted)
    assert event.hello.device_id == "dev-1" and event.hello.capabilities == ["echo", "stored_acks"]
    assert session.hello == event.hello and session.stored_acks
    assert session.data_to_send() == []


def test_welcome_is_the_first_frame_sent() -> None:
    """After the welcome is queued it is the first frame out, and the session is open."""
    session = HubSession()
    session.receive(hello(capabilities=["stored_acks"]))
    session.welcome(WELCOME)
    session.committed(1)
    frames = sent(session)
    assert frames[0]["type"] == "welcome" and frames[0]["device_id"] == "dev-1"
    assert frames[0]["protocol"] == PROTOCOL_VERSION
    assert session.state is SessionState.OPEN


@pytest.mark.parametrize(
    "first",
    [
        metrics(),
        '{"type": "heartbeat"}',
        '{"type": "ack", "id": 1, "success": true}',
        batch(1, [{"cpu": 1}]),
    ],
)
def test_first_frame_must_be_hello(first: str) -> None:
    """Any other valid first frame: a ``hello_required`` error frame, then close with 1008."""
    session = HubSession()
    (event,) = session.receive(first)
    assert isinstance(event, CloseRequested) and event.code == CloseCode.POLICY
    (error,) = sent(session)
    assert error["type"] == "error" and error["code"] == ErrorCode.HELLO_REQUIRED
    assert session.state is SessionState.CLOSED


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ("{", ErrorCode.INVALID_JSON),
        (BAD_FRAME, ErrorCode.UNKNOWN_TYPE),
        ('{"type": "hello", "protocol": 1, "device_id": "bad id"}', ErrorCode.INVALID_FRAME),
    ],
)
def test_unreadable_first_frame_closes(first: str, code: ErrorCode) -> None:
    """A first frame that does not decode is not given a second chance: error frame, close 1008."""
    session = HubSession()
    (event,) = session.receive(first)
    assert isinstance(event, CloseRequested) and event.code == CloseCode.POLICY
    assert [f["code"] for f in sent(session)] == [code]
    assert session.state is SessionState.CLOSED


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, 10**20])
def test_unsupported_protocol_version_closes(version: int) -> None:
    """A hello of another protocol version: an ``unsupported_protocol`` error naming both, close 1008."""
    session = HubSession()
    (event,) = session.receive(hello(protocol=version))
    assert isinstance(event, CloseRequested) and event.code == CloseCode.POLICY
    (error,) = sent(session)
    assert error["code"] == ErrorCode.UNSUPPORTED_PROTOCOL
    assert str(version) in error["message"] and str(PROTOCOL_VERSION) in error["message"]
    assert session.state is SessionState.CLOSED and session.hello is None


def test_second_hello_is_an_unexpected_frame() -> None:
    """A hello on an open session is refused with ``unexpected_frame``; the session stays open."""
    session = opened()
    assert session.receive(hello()) == []
    assert [f["code"] for f in sent(session)] == [ErrorCode.UNEXPECTED_FRAME]
    assert session.state is SessionState.OPEN


def test_second_hello_before_the_welcome_is_refused() -> None:
    """Hello is accepted once per connection, even if the welcome is not queued yet."""
    session = HubSession()
    session.receive(hello())
    assert not any(isinstance(e, HelloAccepted) for e in session.receive(hello()))


def test_hello_timeout_sends_an_error_and_closes() -> None:
    """No hello in time: a ``hello_timeout`` error frame naming the limit, then close 1008."""
    session = HubSession()
    event = session.hello_timeout(5.0)
    assert event.code == CloseCode.POLICY
    (error,) = sent(session)
    assert error["code"] == ErrorCode.HELLO_TIMEOUT and "5 s" in error["message"]
    assert session.state is SessionState.CLOSED


# Refused frames


def test_refused_frame_gets_an_error_frame() -> None:
    """On an open session a bad frame is answered with an error frame carrying its code, not a close."""
    session = opened()
    assert session.receive("{") == []
    assert session.receive(BAD_FRAME) == []
    assert session.receive(metrics(cpu="hot")) == []
    codes = [f["code"] for f in sent(session)]
    assert codes == [ErrorCode.INVALID_JSON, ErrorCode.UNKNOWN_TYPE, ErrorCode.INVALID_FRAME]
    assert session.state is SessionState.OPEN


def test_consecutive_refused_frames_close_with_policy() -> None:
    """``MAX_BAD_FRAMES`` refused frames in a row: the last one yields CloseRequested(1008)."""
    session = opened()
    for _ in range(MAX_BAD_FRAMES - 1):
        assert session.receive(BAD_FRAME) == []
    (event,) = session.receive(BAD_FRAME)
    assert isinstance(event, CloseRequested) and event.code == CloseCode.POLICY
    assert session.state is SessionState.CLOSED
    assert len(sent(session)) == MAX_BAD_FRAMES  # every refusal was answered


@pytest.mark.parametrize(
    "good",
    [metrics(), '{"type": "heartbeat"}', '{"type": "ack", "id": 1, "success": true}'],
)
def test_a_good_frame_resets_the_refused_count(good: str) -> None:
    """A frame the hub takes between refusals starts the count again."""
    session = opened()
    for _ in range(MAX_BAD_FRAMES - 1):
        session.receive(BAD_FRAME)
    session.receive(good)
    for _ in range(MAX_BAD_FRAMES - 1):
        assert session.receive(BAD_FRAME) == []
    assert session.state is SessionState.OPEN


def test_threshold_is_configurable() -> None:
    """``max_bad_frames`` sets how many refusals in a row close the session."""
    session = HubSession(max_bad_frames=2)
    session.receive(hello())
    session.welcome(WELCOME)
    assert session.receive(BAD_FRAME) == []
    assert [type(e) for e in session.receive(BAD_FRAME)] == [CloseRequested]


def test_unknown_command_ack_gets_an_error_naming_the_command() -> None:
    """The store has no such command: an ``unknown_command`` error frame with its id; it counts as refused."""
    session = HubSession(max_bad_frames=2)
    session.receive(hello())
    session.welcome(WELCOME)
    session.data_to_send()
    assert session.unknown_command(42, "no command 42") == []
    (error,) = sent(session)
    assert error == {"type": "error", "code": "unknown_command", "message": "no command 42", "id": 42}
    assert [type(e) for e in session.unknown_command(43, "no command 43")] == [CloseRequested]


@given(st.lists(st.booleans(), max_size=40))
def test_closes_exactly_after_max_bad_in_a_row(good: list[bool]) -> None:
    """For any mix of good and bad frames, the close comes at the first run of MAX_BAD_FRAMES bad ones."""
    session = opened()
    run, expected_close = 0, None
    for index, ok in enumerate(good):
        run = 0 if ok else run + 1
        if run == MAX_BAD_FRAMES and expected_close is None:
            expected_close = index
    closed_at = None
    for index, ok in enumerate(good):
        events = session.receive('{"type": "heartbeat"}' if ok else BAD_FRAME)
        if any(isinstance(e, CloseRequested) for e in events):
            closed_at = index
            break
    assert closed_at == expected_close


# Samples


def test_samples_become_an_event() -> None:
    """A metrics frame on an open session yields its Samples event; nothing is sent for it yet."""
    session = opened()
    (event,) = session.receive(metrics(seq=1))
    assert isinstance(event, Samples) and [s.seq for s in event.valid] == [1]
    assert session.data_to_send() == []


def test_has_data_to_send_says_whether_a_frame_waits() -> None:
    """True exactly when ``data_to_send`` would return a frame: an error frame, or a ``stored``
    owed after a commit; a heartbeat or a sample alone queues nothing (the writer is not woken)."""
    session = opened()
    for frame in ('{"type": "heartbeat"}', metrics(seq=1)):
        session.receive(frame)
        assert not session.has_data_to_send() and session.data_to_send() == []
    session.committed(1)
    assert session.has_data_to_send()
    assert [f["type"] for f in sent(session)] == ["stored"] and not session.has_data_to_send()
    session.receive(BAD_FRAME)
    assert session.has_data_to_send()
    assert [f["type"] for f in sent(session)] == ["error"] and not session.has_data_to_send()
    plain = opened(stored_acks=False)
    plain.receive(metrics())
    plain.committed(1)
    assert not plain.has_data_to_send() and plain.data_to_send() == []


def test_ack_becomes_an_event() -> None:
    """An ack yields AckIn with its extra fields, for the I/O loop to store."""
    session = opened()
    (event,) = session.receive('{"type": "ack", "id": 7, "success": true, "output": "hi"}')
    assert isinstance(event, AckIn) and event.frame.id == 7 and event.extra == {"output": "hi"}


def test_heartbeat_yields_nothing() -> None:
    """A heartbeat is taken silently: no event, no frame."""
    session = opened()
    assert session.receive('{"type": "heartbeat"}') == []
    assert session.data_to_send() == []


def test_invalid_sample_in_a_batch_is_refused_by_seq() -> None:
    """One invalid sample: an ``invalid_sample`` error with its seq, and a Samples event with the others."""
    session = opened()
    events = session.receive(batch(1, [{"cpu": 1}, {"uptime_sec": 2**64 - 1}, {"cpu": 3}]))
    (samples,) = events
    assert isinstance(samples, Samples)
    assert [s.seq for s in samples.valid] == [1, 3] and samples.last_seq == 3
    (error,) = sent(session)
    assert error["type"] == "error" and error["code"] == ErrorCode.INVALID_SAMPLE and error["seq"] == 2
    assert "uptime_sec" in error["message"]


def test_a_batch_with_a_valid_sample_resets_the_refused_count() -> None:
    """A batch that is partly refused still counts as a good frame."""
    session = opened()
    for _ in range(MAX_BAD_FRAMES - 1):
        session.receive(BAD_FRAME)
    session.receive(batch(1, [{"cpu": 1}, {"uptime_sec": 2**64}]))
    for _ in range(MAX_BAD_FRAMES - 1):
        assert session.receive(BAD_FRAME) == []
    assert session.state is SessionState.OPEN


def test_a_frame_of_refused_samples_only_counts_as_refused() -> None:
    """Every sample refused: one error per sample, no Samples event, and it counts toward the close."""
    session = HubSession(max_bad_frames=2)
    session.receive(hello())
    session.welcome(WELCOME)
    session.data_to_send()
    assert session.receive(batch(5, [{"uptime_sec": 2**64}, {"cpu": "x"}])) == []
    assert [(f["code"], f["seq"]) for f in sent(session)] == [("invalid_sample", 5), ("invalid_sample", 6)]
    assert [type(e) for e in session.receive(metrics(seq=7, uptime_sec=2**64))] == [CloseRequested]


# Stored acknowledgements


def test_committed_twice_sends_one_stored_with_the_max() -> None:
    """Two commits before the next send are summed up by one ``stored`` frame with the highest seq."""
    session = opened()
    session.committed(3)
    session.committed(2)  # a commit callback may report an older seq late
    session.committed(5)
    assert sent(session) == [{"type": "stored", "seq": 5}]
    assert session.data_to_send() == []


def test_stored_is_not_repeated_nor_sent_backwards() -> None:
    """A commit at or below what was already acknowledged sends nothing; a higher one sends again."""
    session = opened()
    session.committed(5)
    sent(session)
    session.committed(4)
    session.committed(5)
    assert session.data_to_send() == []
    session.committed(6)
    assert sent(session) == [{"type": "stored", "seq": 6}]


def test_stored_follows_the_frames_queued_before_it() -> None:
    """The ``stored`` frame goes after the error frames already queued (an agent reads them in order)."""
    session = opened()
    session.receive(batch(1, [{"cpu": 1}, {"uptime_sec": 2**64}]))
    session.committed(2)
    assert [f["type"] for f in sent(session)] == ["error", "stored"]


def test_no_stored_frames_without_the_capability() -> None:
    """An agent that did not list ``stored_acks`` never gets a ``stored`` frame."""
    session = opened(stored_acks=False)
    assert not session.stored_acks
    session.receive(metrics(seq=1))
    session.committed(1)
    assert session.data_to_send() == []


@given(st.lists(st.integers(0, 2**63 - 1), max_size=20), st.lists(st.booleans(), max_size=20))
def test_stored_frames_only_increase(commits: list[int], flushes: list[bool]) -> None:
    """Whatever the order of commits and sends, ``stored`` seqs strictly increase and end at the max."""
    session = opened()
    seen: list[int] = []
    for seq, flush in zip(commits, flushes + [False] * len(commits), strict=False):
        session.committed(seq)
        if flush:
            seen += [f["seq"] for f in sent(session)]
    seen += [f["seq"] for f in sent(session)]
    assert seen == sorted(set(seen))
    assert (seen[-1] if seen else 0) == max([0, *commits])


# Closed


def test_nothing_is_accepted_after_close() -> None:
    """Once closed, frames yield no events and queue no error frames."""
    session = opened()
    session.close()
    assert session.state is SessionState.CLOSED
    for frame in (metrics(seq=1), BAD_FRAME, hello(), '{"type": "ack", "id": 1, "success": true}'):
        assert session.receive(frame) == []
    assert session.data_to_send() == []


def test_nothing_is_accepted_after_a_policy_close() -> None:
    """After the session asked for a close, later frames are ignored."""
    session = HubSession()
    session.receive(metrics())
    session.data_to_send()
    assert session.receive(hello()) == []
    assert session.data_to_send() == []


def test_seq_zero_is_acknowledged() -> None:
    """``seq`` may start at 0 (the frames allow it); its commit is answered like any other."""
    session = opened()
    session.receive(metrics(seq=0))
    session.committed(0)
    assert sent(session) == [{"type": "stored", "seq": 0}]
