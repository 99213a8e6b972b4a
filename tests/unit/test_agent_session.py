"""The agent's session rules (protocol/agent_session.py): frames in, frames and events out, no event loop."""

from __future__ import annotations

import dataclasses
from typing import Any

from protocol.agent_session import (
    AckConfirmed,
    AgentSession,
    AgentState,
    CommandReceived,
    GiveUp,
    HandshakeRefused,
    Refused,
    SamplesDone,
    Welcomed,
)
from protocol.codec import AckIn, Samples, decode_agent_frame, encode
from protocol.codes import Capability, CloseCode, ErrorCode
from protocol.frames import (
    PROTOCOL_VERSION,
    Acked,
    CommandFrame,
    ErrorFrame,
    Heartbeat,
    Hello,
    Stored,
    Welcome,
)

BIG = 1 << 20
WELCOME = encode(
    Welcome(
        protocol=PROTOCOL_VERSION,
        device_id="dev-1",
        heartbeat_interval=30,
        ping_interval=20,
        ping_timeout=20,
        max_frame_bytes=BIG,
        server_time="2026-01-01T00:00:00Z",
    )
)


def hello(*capabilities: str) -> Hello:
    return Hello(
        protocol=PROTOCOL_VERSION,
        device_id="dev-1",
        agent_version="1.0",
        hostname="h",
        platform="linux",
        capabilities=list(capabilities),
    )


def opened(**options: Any) -> AgentSession[str]:
    session = AgentSession[str](hello("ping"), **options)
    session.receive(WELCOME)
    return session


def sample(ts: float, **fields: Any) -> dict[str, Any]:
    return {"ts": 1_700_000_000 + ts, "cpu": 1.0, **fields}


def rows(*keys: str) -> list[tuple[str, dict[str, Any]]]:
    return [(key, sample(i)) for i, key in enumerate(keys)]


def sent(session: AgentSession[str], *keys: str) -> Samples:
    """Send ``keys`` in one frame and decode it the way the hub does."""
    out = session.samples_frame(rows(*keys), BIG)
    assert out.text is not None and out.count == len(keys)
    frame = decode_agent_frame(out.text)
    assert isinstance(frame, Samples)
    return frame


def test_hello_announces_stored_acks_once() -> None:
    """hello carries the agent's capabilities plus stored_acks, which is never listed twice."""
    frame = decode_agent_frame(AgentSession[str](hello("ping", "echo")).hello())
    assert isinstance(frame, Hello) and frame.device_id == "dev-1"
    assert frame.capabilities == ["ping", "echo", Capability.STORED_ACKS]
    again = decode_agent_frame(AgentSession[str](hello(Capability.STORED_ACKS)).hello())
    assert isinstance(again, Hello) and again.capabilities == [Capability.STORED_ACKS]


def test_hello_keeps_every_field_the_agent_set() -> None:
    """Adding stored_acks keeps the agent's other hello fields, instance_id among them."""
    mine = dataclasses.replace(hello("ping"), instance_id="inst-42")
    frame = decode_agent_frame(AgentSession[str](mine).hello())
    assert isinstance(frame, Hello)
    assert dataclasses.replace(frame, capabilities=["ping"]) == mine


def test_welcome_opens_the_session() -> None:
    """The answer to hello is a welcome: the session is open and keeps the hub's timings."""
    assert AgentSession[str](hello()).state is AgentState.CONNECTING
    session = AgentSession[str](hello())
    (event,) = session.receive(WELCOME)
    assert isinstance(event, Welcomed) and event.welcome.max_frame_bytes == BIG
    assert session.state is AgentState.OPEN and session.welcome == event.welcome


def test_error_answering_hello_refuses_the_handshake() -> None:
    """An error frame instead of welcome ends the session, naming the hub's code."""
    session = AgentSession[str](hello())
    refusal = encode(ErrorFrame(code=ErrorCode.UNSUPPORTED_PROTOCOL, message="version 9"))
    (event,) = session.receive(refusal)
    assert isinstance(event, HandshakeRefused) and "unsupported_protocol" in event.reason
    assert session.state is AgentState.CLOSED
    assert session.receive(WELCOME) == []


def test_other_frame_or_garbage_answering_hello_refuses_the_handshake() -> None:
    """A command or unreadable bytes instead of welcome end the session as well."""
    command = encode(CommandFrame(id=1, command="ping", created_at="2026-01-01T00:00:00Z"))
    for answer in (command, "not json"):
        session = AgentSession[str](hello())
        (event,) = session.receive(answer)
        assert isinstance(event, HandshakeRefused)
        assert session.state is AgentState.CLOSED


def test_seq_numbers_run_across_single_and_batch_frames() -> None:
    """A single sample takes one seq, a batch of n takes n consecutive seqs from its own."""
    session = opened()
    single = sent(session, "a")
    assert [s.seq for s in single.valid] == [1] and single.last_seq == 1
    batch = sent(session, "b", "c", "d")
    assert [s.seq for s in batch.valid] == [2, 3, 4] and batch.last_seq == 4
    assert sent(session, "e").last_seq == 5
    assert session.in_flight() == {"a", "b", "c", "d", "e"} and session.in_flight_count() == 5


def test_stored_removes_exactly_the_keys_up_to_its_seq() -> None:
    """stored N names every in-flight key with seq <= N, once; later keys stay in flight."""
    session = opened()
    sent(session, "a")
    sent(session, "b", "c", "d")
    (done,) = session.receive(encode(Stored(seq=3)))
    assert done == SamplesDone(["a", "b", "c"])
    assert session.in_flight() == {"d"}
    assert session.receive(encode(Stored(seq=3))) == []
    assert session.receive(encode(Stored(seq=9))) == [SamplesDone(["d"])]
    assert session.in_flight_count() == 0


def test_invalid_sample_error_drops_only_that_key() -> None:
    """An invalid_sample error naming a seq frees that one key, marked refused; the rest wait for stored."""
    session = opened()
    sent(session, "a", "b", "c")
    error = encode(ErrorFrame(code=ErrorCode.INVALID_SAMPLE, message="cpu: bad", seq=2))
    refused, done = session.receive(error)
    assert refused == Refused(ErrorCode.INVALID_SAMPLE, "cpu: bad")
    assert done == SamplesDone(["b"], refused=True)
    assert session.in_flight() == {"a", "c"}
    assert session.receive(encode(Stored(seq=3))) == [SamplesDone(["a", "c"])]


def test_unknown_command_error_confirms_the_ack() -> None:
    """An unknown_command error naming a command id confirms that ack: the hub will never take it."""
    session = opened()
    error = encode(ErrorFrame(code=ErrorCode.UNKNOWN_COMMAND, message="no command 7", id=7))
    assert session.receive(error) == [Refused(ErrorCode.UNKNOWN_COMMAND, "no command 7"), AckConfirmed(7)]


def test_command_and_acked_frames_become_events() -> None:
    """A command frame is delivered as CommandReceived, an acked frame as AckConfirmed."""
    session = opened()
    command = CommandFrame(id=4, command="echo", args={"k": 1}, created_at="2026-01-01T00:00:00Z")
    assert session.receive(encode(command)) == [CommandReceived(command)]
    assert session.receive(encode(Acked(id=4))) == [AckConfirmed(4)]


def test_unexpected_hub_frame_is_refused_not_fatal() -> None:
    """A second welcome on an open session is reported, and the session stays open."""
    session = opened()
    (event,) = session.receive(WELCOME)
    assert isinstance(event, Refused) and event.code == ErrorCode.UNEXPECTED_FRAME
    assert session.state is AgentState.OPEN


def test_unreadable_frames_are_counted_then_the_session_gives_up() -> None:
    """Unreadable frames are refused one by one; a readable one resets the count; max in a row gives up."""
    session = opened(max_bad_frames=3)
    for _ in range(2):
        (event,) = session.receive(b"\xff not json")
        assert isinstance(event, Refused) and event.code == ErrorCode.PROTOCOL_ERROR
    session.receive(encode(Acked(id=1)))
    session.receive("{}")
    session.receive('{"type": "nonsense"}')
    refused, give_up = session.receive("[]")
    assert isinstance(refused, Refused)
    assert isinstance(give_up, GiveUp) and give_up.code is CloseCode.POLICY
    assert session.state is AgentState.CLOSED
    assert session.receive(encode(Stored(seq=1))) == []


def test_invalid_spooled_sample_is_dropped_and_the_others_sent() -> None:
    """A spooled sample failing validation is named in dropped; the frame carries the rest, seqs unbroken."""
    session = opened()
    spooled = [("a", sample(1)), ("bad", sample(2, cpu="high")), ("c", sample(3))]
    out = session.samples_frame(spooled, BIG)
    assert out.dropped == ["bad"] and out.count == 2 and out.text is not None
    frame = decode_agent_frame(out.text)
    assert isinstance(frame, Samples) and [s.seq for s in frame.valid] == [1, 2]
    assert session.in_flight() == {"a", "c"}


def test_only_invalid_samples_give_no_frame() -> None:
    """When every row is invalid there is no frame to send, only keys to drop."""
    session = opened()
    out = session.samples_frame([("x", {"ts": "yesterday"})], BIG)
    assert out.text is None and out.dropped == ["x"] and out.count == 0
    assert session.in_flight_count() == 0


def test_frame_size_limit_halves_the_batch() -> None:
    """Over the limit the batch is halved until it fits; the samples left out are not in flight."""
    keys = [f"k{i}" for i in range(8)]
    reference = AgentSession[str](hello())
    two = reference.samples_frame(rows(*keys[:2]), BIG).text
    assert two is not None
    session = opened()
    out = session.samples_frame(rows(*keys), len(two.encode()))
    assert out.count == 2 and out.dropped == [] and out.text == two
    assert session.in_flight() == {"k0", "k1"}
    assert sent(session, "k2").last_seq == 3


def test_frame_size_limit_counts_bytes_not_characters() -> None:
    """A sample whose text fits the limit in characters but not in UTF-8 bytes is not sent whole."""
    session = opened()
    wide = [(f"k{i}", sample(i, hostname="é" * 100)) for i in range(2)]
    reference = AgentSession[str](hello()).samples_frame(wide, BIG).text
    assert reference is not None and len(reference) < len(reference.encode())
    out = session.samples_frame(wide, len(reference))
    assert out.count == 1


def test_sample_alone_over_the_limit_is_dropped() -> None:
    """A sample no frame can carry is dropped rather than sent to be refused forever."""
    session = opened()
    out = session.samples_frame([("huge", sample(1, last_error="x" * 5000))], 1000)
    assert out.text is None and out.dropped == ["huge"]
    assert session.in_flight_count() == 0


def test_ack_and_heartbeat_frames() -> None:
    """The ack text names the command and keeps the result's extra fields; heartbeat is its own frame."""
    session = opened()
    ack = decode_agent_frame(session.ack(5, False, "exit 2", {"exit_code": 2}))
    assert isinstance(ack, AckIn) and ack.frame.id == 5 and ack.frame.success is False
    assert ack.frame.message == "exit 2" and ack.extra == {"exit_code": 2}
    assert isinstance(decode_agent_frame(session.heartbeat()), Heartbeat)
