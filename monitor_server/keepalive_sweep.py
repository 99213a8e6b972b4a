"""One timer per event loop finds the sockets to ping, instead of a timer per socket.

uvicorn's keepalive arms a timer per socket for every ping. The hub pings only a peer silent for
a ping interval and a grace (``keepalive.py``), so a live agent is never pinged, but its timer
still fired about once an interval to look, and was armed again: 10,000 idle agents cost about
1,700 timer callbacks a second. The sweep instead walks the sockets it holds every ``tick``
seconds and compares each one's last read with one threshold (a float comparison per socket);
only a silent one gets a ping, and its own pong deadline, as before.

The sweep looks up to a ``tick`` late, so the pong deadline is set at a fixed point after the last
bytes read (``ping_interval + ping_timeout``), not after the ping: the worst case for a silent
peer stays what it was.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

# Share of the shorter of the ping interval and timeout between two sweeps.
TICK_SHARE = 0.1


class Swept(Protocol):
    last_received: float  # loop time of the last bytes read from the peer

    def silent(self, now: float) -> None:
        """Silent for the ping interval and a grace at ``now``: ping, unless a ping is out."""


class KeepaliveSweep:
    """The sockets of one event loop with the same keepalive timings."""

    def __init__(self, loop: asyncio.AbstractEventLoop, silence: float, tick: float) -> None:
        self.loop = loop
        self.silence = silence  # seconds without a byte read before a socket is pinged
        self.tick = tick
        self._sockets: dict[Swept, None] = {}  # insertion-ordered, O(1) removal
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._sockets)

    def add(self, socket: Swept) -> None:
        self._sockets[socket] = None
        if self._timer is None:
            self._timer = self.loop.call_later(self.tick, self._sweep)

    def discard(self, socket: Swept) -> None:
        self._sockets.pop(socket, None)
        if not self._sockets and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        now = self.loop.time()
        before = now - self.silence
        silent = [s for s in self._sockets if s.last_received <= before]
        for socket in silent:
            socket.silent(now)
        self._timer = self.loop.call_later(self.tick, self._sweep) if self._sockets else None


_sweeps: dict[tuple[asyncio.AbstractEventLoop, float, float], KeepaliveSweep] = {}


def sweep_for(loop: asyncio.AbstractEventLoop, silence: float, tick: float) -> KeepaliveSweep:
    """The loop's sweep for these timings (made on first use; those of closed loops dropped)."""
    key = (loop, silence, tick)
    found = _sweeps.get(key)
    if found is None:
        for stale in [k for k in _sweeps if k[0].is_closed()]:
            del _sweeps[stale]
        found = _sweeps[key] = KeepaliveSweep(loop, silence, tick)
    return found
