"""The agent's end of a connection, sans-I/O: builds its frames, reads the hub's, keeps ``seq``.

A spooled sample is sent with a sequence number and stays in the spool until the hub's
``stored`` frame covers it (or an ``error`` frame refuses it by that number): a pong or a
written socket proves nothing about the commit. The I/O loop
(``monitor_agent/connection.py``) moves the frames and deletes what the events name.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Generic, TypeVar

from protocol.codes import Capability, CloseCode, ErrorCode
from protocol.errors import FrameValidationError, IllegalTransition, ProtocolError
from protocol.frames import (
    MAX_BATCH,
    PROTOCOL_VERSION,
    Acked,
    CommandFrame,
    CredentialFrame,
    CredentialSaved,
    ErrorFrame,
    Heartbeat,
    Hello,
    Stored,
    UpdateFrame,
    UpdateStatus,
    Welcome,
)
from protocol.plain import decode_hub_frame, encode, encode_json, split_sample

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)  # how the spool names a sample
MAX_BAD_FRAMES = 10  # consecutive unreadable hub frames before the agent gives up the connection


class AgentState(StrEnum):
    CONNECTING = "connecting"  # hello sent, waiting for welcome
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Welcomed:
    welcome: Welcome


@dataclass(frozen=True, slots=True)
class CommandReceived:
    command: CommandFrame


@dataclass(frozen=True, slots=True)
class CredentialReceived:
    """Rotation: store ``credential`` durably, then send ``AgentSession.credential_saved()``."""

    credential: str = field(repr=False)  # a secret: never in a log line or a traceback


@dataclass(frozen=True, slots=True)
class UpdateOffered:
    """The hub offers a release (DESIGN §12): download, verify and stage it, report with
    ``AgentSession.update_status``."""

    update: UpdateFrame


@dataclass(frozen=True, slots=True)
class AckConfirmed:
    """The hub stored (or will never take) the ack of this command: forget it."""

    command_id: int


@dataclass(frozen=True, slots=True)
class SamplesDone(Generic[K]):
    """These spooled samples are committed by the hub, or refused for good: delete them."""

    keys: list[K]
    refused: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    """The hub refused a frame (logged by the I/O loop)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class HandshakeRefused:
    """The hub answered hello with something other than welcome: the connection is over."""

    reason: str
    code: str = ""
    retry_after: float | None = None  # how long the hub asks us to stay away


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Too many unreadable frames: close with ``code``."""

    code: CloseCode
    reason: str


AgentEvent = (
    Welcomed
    | CommandReceived
    | CredentialReceived
    | UpdateOffered
    | AckConfirmed
    | SamplesDone[K]
    | Refused
    | HandshakeRefused
    | GiveUp
)


@dataclass(frozen=True, slots=True)
class Outgoing(Generic[K]):
    """A frame of samples to send, and the spooled samples it dropped as invalid."""

    text: str | None
    dropped: list[K]
    count: int  # samples the frame carries


class AgentSession(Generic[K]):
    """Session rules for one connection of an agent; ``K`` is the spool's key type."""

    def __init__(self, hello: Hello, max_bad_frames: int = MAX_BAD_FRAMES) -> None:
        caps = list(hello.capabilities)
        if Capability.STORED_ACKS not in caps:
            caps.append(Capability.STORED_ACKS)
        # Every other field (instance_id, and any added later) is kept as the agent set it.
        self._hello = replace(hello, protocol=PROTOCOL_VERSION, capabilities=caps)
        self.state = AgentState.CONNECTING
        self.welcome: Welcome | None = None
        self._max_bad = max_bad_frames
        self._bad_in_a_row = 0
        self._next_seq = 1
        self._in_flight: dict[int, K] = {}  # seq -> spool key, sent but not yet stored
        self._credentials_to_confirm = 0  # ``credential`` frames received, not yet answered

    def hello(self) -> str:
        return encode(self._hello)

    # Samples out

    def in_flight(self) -> frozenset[K]:
        """Keys sent on this connection and not yet stored: not to be sent again on it."""
        return frozenset(self._in_flight.values())

    def in_flight_count(self) -> int:
        return len(self._in_flight)

    def samples_frame(self, rows: Sequence[tuple[K, Mapping[str, Any]]], limit: int) -> Outgoing[K]:
        """A ``metrics`` or ``metrics_batch`` frame for the oldest rows that fit in ``limit`` bytes.

        Samples that fail validation, or that alone exceed ``limit``, can never be sent: they are
        named in ``dropped`` (the hub would refuse them, or close the socket over them forever).
        """
        valid: list[tuple[K, Mapping[str, Any]]] = []
        dropped: list[K] = []
        for key, sample in rows[:MAX_BATCH]:
            try:
                split_sample(sample)
            except FrameValidationError as exc:
                log.error("dropping a spooled sample that fails validation: %s", exc)
                dropped.append(key)
                continue
            valid.append((key, sample))
        count = len(valid)
        while count:
            data = self._samples_json([s for _, s in valid[:count]])
            if len(data) <= limit:  # bytes, as the hub's frame limit counts them
                for offset, (key, _) in enumerate(valid[:count]):
                    self._in_flight[self._next_seq + offset] = key
                self._next_seq += count
                return Outgoing(data.decode(), dropped, count)
            if count == 1:
                log.error(
                    "dropping a spooled sample of %d bytes: over the %d-byte frame limit", len(data), limit
                )
                dropped.append(valid[0][0])
                break
            count //= 2
        return Outgoing(None, dropped, 0)

    def _samples_json(self, samples: list[Mapping[str, Any]]) -> bytes:
        if len(samples) == 1:
            body: dict[str, Any] = {**samples[0], "type": "metrics", "seq": self._next_seq}
        else:
            body = {"type": "metrics_batch", "seq": self._next_seq, "samples": samples}
        return encode_json(body)

    # Other frames out

    def ack(self, command_id: int, success: bool, message: str, extra: Mapping[str, Any]) -> str:
        named = encode_json(
            {**extra, "type": "ack", "id": command_id, "success": success, "message": message}
        )
        return named.decode()

    def heartbeat(self) -> str:
        return encode(Heartbeat())

    def credential_saved(self) -> str:
        """The answer to a ``credential`` frame, once its credential is stored durably."""
        if not self._credentials_to_confirm:
            raise IllegalTransition("credential_saved without a credential received")
        self._credentials_to_confirm -= 1
        return encode(CredentialSaved())

    def update_status(self, version: str, state: str, reason: str = "") -> str:
        """An ``update_status`` frame (``state``: downloading, installed, failed, rolled_back)."""
        return encode(UpdateStatus(version=version, state=state, reason=reason[:4096]))  # type: ignore[arg-type]

    # Frames in

    def receive(self, data: bytes | str) -> list[AgentEvent[K]]:
        if self.state is AgentState.CLOSED:
            return []
        try:
            frame = decode_hub_frame(data)
        except ProtocolError as exc:
            return self._unreadable(str(exc))
        self._bad_in_a_row = 0
        if self.state is AgentState.CONNECTING:
            return [self._handshake(frame)]
        if isinstance(frame, CommandFrame):
            return [CommandReceived(frame)]
        if isinstance(frame, Acked):
            return [AckConfirmed(frame.id)]
        if isinstance(frame, Stored):
            return self._stored(frame.seq)
        if isinstance(frame, CredentialFrame):
            self._credentials_to_confirm += 1
            return [CredentialReceived(frame.credential)]
        if isinstance(frame, ErrorFrame):
            return self._error(frame)
        if isinstance(frame, UpdateFrame):
            return [UpdateOffered(frame)]
        return [Refused(ErrorCode.UNEXPECTED_FRAME, f"unexpected {type(frame).__name__} frame")]

    def _handshake(self, frame: object) -> AgentEvent[K]:
        if isinstance(frame, Welcome):
            self.state = AgentState.OPEN
            self.welcome = frame
            return Welcomed(frame)
        self.state = AgentState.CLOSED
        if isinstance(frame, ErrorFrame):
            return HandshakeRefused(
                f"hub refused hello: {frame.code}: {frame.message}", frame.code, frame.retry_after
            )
        return HandshakeRefused(f"expected welcome, got {type(frame).__name__}")

    def _stored(self, seq: int) -> list[AgentEvent[K]]:
        done = [s for s in self._in_flight if s <= seq]
        if not done:
            return []
        return [SamplesDone([self._in_flight.pop(s) for s in sorted(done)])]

    def _error(self, frame: ErrorFrame) -> list[AgentEvent[K]]:
        events: list[AgentEvent[K]] = [Refused(frame.code, frame.message)]
        if frame.code == ErrorCode.UNKNOWN_COMMAND and frame.id is not None:
            events.append(AckConfirmed(frame.id))  # the hub will never take that ack
        if frame.code == ErrorCode.INVALID_SAMPLE and frame.seq in self._in_flight:
            events.append(SamplesDone([self._in_flight.pop(frame.seq)], refused=True))
        return events

    def _unreadable(self, message: str) -> list[AgentEvent[K]]:
        self._bad_in_a_row += 1
        events: list[AgentEvent[K]] = [Refused(ErrorCode.PROTOCOL_ERROR, f"unreadable hub frame: {message}")]
        if self.state is AgentState.CONNECTING:
            self.state = AgentState.CLOSED
            return [HandshakeRefused(f"unreadable answer to hello: {message}")]
        if self._bad_in_a_row >= self._max_bad:
            self.state = AgentState.CLOSED
            events.append(GiveUp(CloseCode.POLICY, "too many unreadable frames from the hub"))
        return events
