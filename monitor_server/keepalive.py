"""uvicorn's sans-I/O WebSocket protocol, telling the app *why* a socket died.

It also lets the application abort a connection's transport (``ABORT_EXTENSION`` in the scope):
closing politely needs the peer to read, and a peer that does not read is the one to drop.

Stock uvicorn reports a keepalive ping timeout to the application as an anonymous 1005 once the
transport is gone; presence needs to say ``timeout`` rather than ``disconnected``, so the
timeout is reported as close code 1011 first.

A ping is sent only to a peer that has been silent a little longer than a ping interval: any
bytes received (a sample, a heartbeat, the agent's own ping) prove it alive as well as a pong
would. An agent heartbeats every interval (the hub's default heartbeat and ping intervals are
equal), so its next frame lands just after the interval: ``SILENCE_GRACE`` of the interval is
waited on top, and taken off the pong deadline, so a silent peer is still dropped at most
``ping_interval + ping_timeout`` after the last thing it sent: the worst case of pinging on a
fixed clock, for no ping at all to a live agent. Which peers are silent is found by one sweep
per event loop (``keepalive_sweep``), not by a timer per socket.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State
from websockets.streams import StreamReader
from websockets.utils import apply_mask

from monitor_server.keepalive_sweep import TICK_SHARE, KeepaliveSweep, sweep_for
from monitor_server.lean_sync import ReceiveQueue, Wakeup
from protocol.codes import CloseCode

# The ASGI scope extension through which the app drops a connection at once (buffers and all).
ABORT_EXTENSION = "monitor.transport.abort"
# Share of the ping interval a peer may be silent beyond it before it is pinged (see above).
SILENCE_GRACE = 0.2
# Messages queued for the application before reading from the socket pauses (see below).
QUEUED_BEFORE_PAUSE = 4
# Present in the scope once the server closes the connection because it is shutting down.
SERVER_SHUTDOWN_EXTENSION = "monitor.server.shutdown"
# A client's ping: FIN and opcode 9 (no extension bits), then the mask bit and a 7-bit length.
_PING, _PONG, _MASKED = 0x89, 0x8A, 0x80
# What websockets' parser runs while it waits for the first byte of a frame (not inside one).
_AT_FRAME_START = StreamReader.at_eof.__code__


def _running_code(parser: object) -> object:
    """The code a generator runs now, through its ``yield from`` chain (websockets' parser)."""
    while (inner := getattr(parser, "gi_yieldfrom", None)) is not None:
        parser = inner
    return getattr(parser, "gi_code", None)


class KeepaliveReportingProtocol(WebSocketsSansIOProtocol):
    last_received = 0.0  # loop time of the last bytes read from the peer
    _sweep: KeepaliveSweep | None = None  # while the keepalive runs

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The same calls as asyncio's, without their deques (monitor_server.lean_sync).
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        self.writable = Wakeup()  # type: ignore[assignment]
        self.writable.set()

    def start_keepalive(self) -> None:
        """The handshake is done (uvicorn starts its keepalive then): its request and response,
        headers and all, are not read again; the scope keeps what the application needs. The
        loop's sweep looks after the socket from now on (``keepalive_sweep``)."""
        del self.request, self.response
        if self.ping_interval:
            self._sweep = sweep_for(self.loop, self.ping_interval + self._grace(), self._tick())
            self._sweep.add(self)

    def stop_keepalive(self) -> None:
        super().stop_keepalive()
        if self._sweep is not None:
            self._sweep.discard(self)
            self._sweep = None

    def schedule_ping(self) -> None:
        """uvicorn arms the next ping after each pong: the sweep sends pings instead."""

    def _shorter(self) -> float:
        assert self.ping_interval is not None
        return min(self.ping_interval, self.ping_timeout or self.ping_interval)

    def _grace(self) -> float:
        return SILENCE_GRACE * self._shorter()

    def _tick(self) -> float:
        return TICK_SHARE * self._shorter()

    def data_received(self, data: bytes) -> None:
        self.last_received = self.loop.time()
        if not self._answered_lone_ping(data):
            super().data_received(data)

    def _answered_lone_ping(self, data: bytes) -> bool:
        """An agent's keepalive ping, alone in what was read and at a frame boundary (most of what an
        idle hub reads): answered with its pong, the bytes websockets would send, without running
        websockets' frame parser and uvicorn's event dispatch (a third of an idle hub's CPU)."""
        size = len(data) - 6  # header, mask, payload
        if not (0 <= size <= 125 and data[0] == _PING and data[1] == _MASKED | size):
            return False
        conn = self.conn
        if conn.state is not State.OPEN or self.close_sent or conn.reader.buffer or conn.writes:
            return False
        if _running_code(conn.parser) is not _AT_FRAME_START:
            return False  # inside a frame whose first bytes came earlier: the parser's to read
        self.transport.write(bytes((_PONG, size)) + apply_mask(data[6:], data[2:6]))
        return True

    def silent(self, now: float) -> None:
        """The sweep found the peer silent for an interval and a grace: ping it, unless a ping is
        out. The pong is due ``ping_interval + ping_timeout`` after the last bytes read, as when each
        socket had its own timer (the sweep looks up to two ticks late); after a stall of the loop,
        the peer still gets ``ping_timeout`` less the grace and two ticks to answer."""
        if self.pending_ping_payload is not None:
            return
        assert self.ping_interval is not None
        super().send_keepalive_ping()  # nothing when the socket is closing
        if self.pong_timer is not None and self.ping_timeout is not None:
            least = self.ping_timeout - self._grace() - 2 * self._tick()
            due = max(self.last_received + self.ping_interval + self.ping_timeout, now + least)
            self.pong_timer.cancel()
            self.pong_timer = self.loop.call_at(due, self.keepalive_timeout)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][ABORT_EXTENSION] = {"abort": self.transport.abort}

    def shutdown(self) -> None:
        """The hub is stopping: mark the scope, so a 1012 is told apart from an agent's own restart."""
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][SERVER_SHUTDOWN_EXTENSION] = {}
        super().shutdown()

    def send_receive_event_to_app(self) -> None:
        """A text frame that is not UTF-8 closes with 1007 and one log line (stock: a traceback)."""
        if self.curr_msg_data_type == "text" and not self.close_sent:
            try:
                b"".join(self.frames).decode()
            except UnicodeDecodeError as exc:
                self.frames = []
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
                self.logger.warning("%s: text frame is not UTF-8 (%s): closing with 1007", client, exc.reason)
                self.conn.send_close(CloseCode.INVALID_DATA, "text frame is not UTF-8")
                self.handle_parser_exception()
                return
        if self.read_paused or self.queue.qsize() >= QUEUED_BEFORE_PAUSE - 1:
            super().send_receive_event_to_app()  # stock: queue it and pause reading
            return
        # Stock uvicorn pauses reading after every message and resumes when the app has read it:
        # two epoll changes per frame, for agents that send one small frame per sample. Reading
        # pauses only once QUEUED_BEFORE_PAUSE messages wait (still bounded: each is at most
        # ``max_frame_bytes``); uvicorn skips its pause while ``read_paused`` already says so.
        self.read_paused = True
        super().send_receive_event_to_app()
        self.read_paused = False

    def keepalive_timeout(self) -> None:
        if self.read_paused and not (self.close_sent or self.transport.is_closing()):
            # The application is not reading (it holds back an agent while its samples wait for a
            # commit): the pong may be waiting unread behind them. Give it another timeout.
            assert self.ping_timeout is not None
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
            return
        self._report_timeout()

    def _report_timeout(self) -> None:
        if not (self.close_sent or self.transport.is_closing()):
            self.queue.put_nowait(
                {
                    "type": "websocket.disconnect",
                    "code": CloseCode.TIMEOUT,
                    "reason": "keepalive ping timeout",
                }
            )
        super().keepalive_timeout()
