"""One timer per event loop finds the sockets to ping, instead of a timer per socket.

uvicorn's keepalive arms a timer per socket for every ping. The hub pings only a peer silent for
a ping interval and a grace (``keepalive.py``), so a live agent is never pinged, but its timer
still fired about once an interval to look, and was armed again: 10,000 idle agents cost about
1,700 timer callbacks a second, each arming a new timer. The sweep keeps a timing wheel instead:
a socket sits in the slot of the tick when it could first have been silent for ``silence``
seconds (from its last read), and when that tick comes it is looked at once: silent, it is
pinged (and gets its own pong deadline, as before); else it moves to the slot its last read now
gives. A socket costs a look and a list append per ``silence`` seconds; one timer per tick serves
them all. (Comparing every socket's last read at every tick instead cost more than the timers:
a cache miss per socket, 20,000 a second at 10,000 sockets.)

A socket's silence runs out inside its slot's tick and the sweeps run on the ticks' boundaries,
so it is looked at up to two ticks late (one when a timer fires a little early); the pong
deadline is therefore set at a fixed point after the last bytes read (``ping_interval +
ping_timeout``), not after the ping: the worst case for a silent peer stays what it was.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

# Share of the shorter of the ping interval and timeout between two sweeps.
TICK_SHARE = 0.1


class Swept(Protocol):
    last_received: float  # loop time of the last bytes read from the peer

    def silent(self, now: float) -> None:
        """Silent for the ping interval and a grace at ``now``: ping, unless a ping is out."""


class KeepaliveSweep:
    """The sockets of one event loop with the same keepalive timings, in a timing wheel."""

    def __init__(self, loop: asyncio.AbstractEventLoop, silence: float, tick: float) -> None:
        self.loop = loop
        self.silence = silence  # seconds without a byte read before a socket is pinged
        self.tick = tick
        self._sockets: set[Swept] = set()
        self._slots: dict[int, list[Swept]] = {}  # by tick number: the sockets to look at then
        self._next = 0  # the first tick number not looked at yet
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._sockets)

    def add(self, socket: Swept) -> None:
        if not self._sockets:
            self._next = math.floor(self.loop.time() / self.tick)
            self._timer = self.loop.call_at((self._next + 1) * self.tick, self._sweep)
        self._sockets.add(socket)
        self._look_at(socket, socket.last_received + self.silence)

    def discard(self, socket: Swept) -> None:
        """Taken out (its slot entry is dropped when that tick comes)."""
        self._sockets.discard(socket)
        if not self._sockets:
            self._slots.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _look_at(self, socket: Swept, when: float) -> None:
        self._slots.setdefault(max(math.ceil(when / self.tick), self._next), []).append(socket)

    def _sweep(self) -> None:
        now = self.loop.time()
        last = math.floor(now / self.tick)
        for number in range(self._next, last + 1):
            for socket in self._slots.pop(number, ()):
                if socket not in self._sockets:
                    continue
                when = socket.last_received + self.silence
                if when <= now:
                    socket.silent(now)  # a ping (or one already out): look again a silence later
                    when = now + self.silence
                self._look_at(socket, when)
        self._next = last + 1
        # On the next boundary (not a tick after this sweep ran: a late sweep would push every later one).
        self._timer = self.loop.call_at(self._next * self.tick, self._sweep) if self._sockets else None


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
