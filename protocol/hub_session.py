"""The hub's end of one agent connection, sans-I/O: fed received frames, it returns events.

It owns the session rules: hello first and only once, the protocol version, counting refused
frames and deciding to close, and the ``seq`` / ``stored`` bookkeeping of samples. The I/O
loop around it (``monitor_server/agent_socket.py``) moves bytes, stores what the events
carry, and sends what ``data_to_send`` returns. No event loop is needed to test it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.codec import AckIn, Samples, decode_agent_frame, encode
from protocol.codes import Capability, CloseCode, ErrorCode
from protocol.errors import IllegalTransition, ProtocolError
from protocol.frames import (
    PROTOCOL_VERSION,
    CredentialFrame,
    CredentialSaved,
    ErrorFrame,
    Heartbeat,
    Hello,
    Stored,
    UpdateStatus,
    Welcome,
)

MAX_BAD_FRAMES = 10  # consecutive refused frames before the socket is closed for abuse


class SessionState(StrEnum):
    AWAITING_HELLO = "awaiting_hello"
    AWAITING_WELCOME = "awaiting_welcome"  # hello accepted; the hub registers the device
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class HelloAccepted:
    """A valid hello: register the device, then call ``HubSession.welcome``."""

    hello: Hello


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """Close the socket with this code; the session takes no more frames."""

    code: CloseCode
    reason: str


@dataclass(frozen=True, slots=True)
class CredentialStored:
    """The agent stored the credential offered on this connection: retire its old one now."""


HubEvent = HelloAccepted | Samples | AckIn | CloseRequested | CredentialStored | UpdateStatus


class HubSession:
    """Session rules for one agent socket on the hub."""

    def __init__(self, max_bad_frames: int = MAX_BAD_FRAMES) -> None:
        self.state = SessionState.AWAITING_HELLO
        self.hello: Hello | None = None
        self.stored_acks = False
        self._max_bad = max_bad_frames
        self._bad_in_a_row = 0
        self._outgoing: list[str] = []
        self._committed = -1  # highest seq known committed
        self._acknowledged = -1  # highest seq sent in a ``stored`` frame
        self.credential_offered = False  # a ``credential`` frame awaits its ``credential_saved``

    # Input

    def receive(self, data: bytes | str) -> list[HubEvent]:
        """Feed one received message; return what the I/O loop must act on."""
        if self.state is SessionState.CLOSED:
            return []
        try:
            frame = decode_agent_frame(data)
        except ProtocolError as exc:
            return self._refuse(exc.code, str(exc))
        if self.state is SessionState.AWAITING_HELLO:
            return self._first(frame)
        if self.state is SessionState.AWAITING_WELCOME:
            return self._refuse(ErrorCode.UNEXPECTED_FRAME, "no frame may follow hello before welcome")
        if isinstance(frame, Hello):
            return self._refuse(ErrorCode.UNEXPECTED_FRAME, "hello was already received on this connection")
        if isinstance(frame, Samples):
            return self._samples(frame)
        if isinstance(frame, CredentialSaved):
            return self._credential_saved()
        self._bad_in_a_row = 0
        if isinstance(frame, AckIn | UpdateStatus):  # an update's progress: stored by the I/O loop
            return [frame]
        assert isinstance(frame, Heartbeat), frame  # the decoder returns acks and samples wrapped
        return []

    def hello_timeout(self, within: float) -> CloseRequested:
        """The hello did not arrive in time."""
        return self._close_with_error(ErrorCode.HELLO_TIMEOUT, f"no hello within {within:g} s")

    def duplicate(self, retry_after: float) -> CloseRequested:
        """Another agent instance holds this device id: the newcomer is refused, told to wait."""
        assert self.hello is not None
        message = (
            f"device id {self.hello.device_id!r} is held by another agent instance; two machines "
            "share it (a cloned VM?): give one a distinct device_id"
        )
        self._outgoing.append(
            encode(ErrorFrame(code=ErrorCode.DUPLICATE_DEVICE, message=message, retry_after=retry_after))
        )
        self.state = SessionState.CLOSED
        return CloseRequested(CloseCode.DUPLICATE, "device id held by another agent instance")

    def forbidden(self, message: str) -> CloseRequested:
        """The credential does not allow this hello (another device's id): refused, not retried."""
        self._outgoing.append(encode(ErrorFrame(code=ErrorCode.FORBIDDEN, message=message)))
        self.state = SessionState.CLOSED
        return CloseRequested(CloseCode.FORBIDDEN, "forbidden: the credential is another device's")

    def welcome(self, welcome: Welcome) -> None:
        """Queue the welcome (its timings come from the hub's settings) and open the session."""
        if self.state is not SessionState.AWAITING_WELCOME:
            raise IllegalTransition(f"welcome in state {self.state}")
        self.state = SessionState.OPEN
        self._outgoing.append(encode(welcome))

    def offer_credential(self, credential: str) -> None:
        """Rotation: queue a ``credential`` frame; ``CredentialStored`` follows the agent's answer.

        One offer at a time, on an open session only (IllegalTransition otherwise).
        """
        if self.state is not SessionState.OPEN:
            raise IllegalTransition(f"credential offered in state {self.state}")
        if self.credential_offered:
            raise IllegalTransition("a credential offer already awaits its credential_saved")
        self.credential_offered = True
        self._outgoing.append(encode(CredentialFrame(credential=credential)))

    def unknown_command(self, command_id: int, message: str) -> list[HubEvent]:
        """The store has no such command for this device: tell the agent, so it stops re-sending."""
        self._outgoing.append(
            encode(ErrorFrame(code=ErrorCode.UNKNOWN_COMMAND, message=message, id=command_id))
        )
        return self._count_bad()

    def committed(self, seq: int) -> None:
        """Every sample up to ``seq`` is committed; a ``stored`` frame goes out with the next send."""
        self._committed = max(self._committed, seq)

    def close(self) -> None:
        self.state = SessionState.CLOSED

    # Output

    def has_data_to_send(self) -> bool:
        """Whether ``data_to_send`` has a frame now (the I/O loop wakes its writer only then)."""
        return bool(self._outgoing) or self._stored_owed()

    def data_to_send(self) -> list[str]:
        """Frames to send now, in order; one ``stored`` frame sums up every commit since the last."""
        frames, self._outgoing = self._outgoing, []
        if self._stored_owed():
            self._acknowledged = self._committed
            frames.append(encode(Stored(seq=self._committed)))
        return frames

    def _stored_owed(self) -> bool:
        """A commit since the last ``stored`` frame, to an agent that asked for them."""
        return self.stored_acks and self._committed > self._acknowledged

    # Rules

    def _first(self, frame: object) -> list[HubEvent]:
        if not isinstance(frame, Hello):
            kind = type(frame).__name__.lower() if not isinstance(frame, Samples) else "metrics"
            return [
                self._close_with_error(ErrorCode.HELLO_REQUIRED, f"the first frame must be hello, not {kind}")
            ]
        if frame.protocol != PROTOCOL_VERSION:
            return [
                self._close_with_error(
                    ErrorCode.UNSUPPORTED_PROTOCOL,
                    f"protocol {frame.protocol} is not supported; this hub speaks {PROTOCOL_VERSION}",
                )
            ]
        self.hello = frame
        self.stored_acks = Capability.STORED_ACKS in frame.capabilities
        self.state = SessionState.AWAITING_WELCOME
        return [HelloAccepted(frame)]

    def _credential_saved(self) -> list[HubEvent]:
        if not self.credential_offered:
            return self._refuse(ErrorCode.UNEXPECTED_FRAME, "credential_saved without a credential offered")
        self.credential_offered = False
        self._bad_in_a_row = 0
        return [CredentialStored()]

    def _samples(self, samples: Samples) -> list[HubEvent]:
        for refused in samples.refused:
            self._outgoing.append(
                encode(ErrorFrame(code=ErrorCode.INVALID_SAMPLE, message=refused.message, seq=refused.seq))
            )
        events: list[HubEvent] = [samples] if samples.valid else []
        if samples.refused and not samples.valid:
            return events + self._count_bad()
        self._bad_in_a_row = 0
        return events

    def _refuse(self, code: ErrorCode, message: str) -> list[HubEvent]:
        if self.state is SessionState.AWAITING_HELLO:
            return [self._close_with_error(code, message)]
        self._outgoing.append(encode(ErrorFrame(code=code, message=message)))
        return self._count_bad()

    def _count_bad(self) -> list[HubEvent]:
        self._bad_in_a_row += 1
        if self._bad_in_a_row < self._max_bad:
            return []
        self.state = SessionState.CLOSED
        return [CloseRequested(CloseCode.POLICY, "too many invalid frames")]

    def _close_with_error(self, code: ErrorCode, message: str) -> CloseRequested:
        self._outgoing.append(encode(ErrorFrame(code=code, message=message)))
        self.state = SessionState.CLOSED
        return CloseRequested(CloseCode.POLICY, message[:120])
