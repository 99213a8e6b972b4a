"""One sweep per event loop finds the silent sockets (``monitor_server.keepalive_sweep``)."""

from __future__ import annotations

import asyncio

from monitor_server import keepalive_sweep
from monitor_server.keepalive_sweep import KeepaliveSweep, sweep_for


class Socket:
    """What the sweep reads and calls on a socket."""

    def __init__(self, last_received: float) -> None:
        self.last_received = last_received
        self.calls: list[float] = []
        self.called = asyncio.Event()

    def silent(self, now: float) -> None:
        self.calls.append(now)
        self.called.set()


async def test_only_sockets_silent_past_the_threshold_are_told() -> None:
    loop = asyncio.get_running_loop()
    sweep = KeepaliveSweep(loop, silence=0.2, tick=0.02)
    quiet, busy = Socket(loop.time()), Socket(loop.time() + 3600)  # busy: read "in the future"
    sweep.add(quiet)
    sweep.add(busy)
    await asyncio.wait_for(quiet.called.wait(), 2)
    assert quiet.calls[0] - quiet.last_received >= 0.2
    assert busy.calls == []


async def test_a_socket_that_reads_again_is_not_told_until_silent_again() -> None:
    loop = asyncio.get_running_loop()
    sweep = KeepaliveSweep(loop, silence=0.1, tick=0.01)
    socket = Socket(loop.time())
    sweep.add(socket)
    await asyncio.wait_for(socket.called.wait(), 2)
    socket.called.clear()
    socket.last_received = read_at = loop.time()
    await asyncio.wait_for(socket.called.wait(), 2)
    assert all(at < read_at or at - read_at >= 0.1 for at in socket.calls)


async def test_the_timer_stops_with_the_last_socket_and_starts_with_the_next() -> None:
    loop = asyncio.get_running_loop()
    sweep = KeepaliveSweep(loop, silence=0.05, tick=0.01)
    first = Socket(loop.time())
    sweep.add(first)
    await asyncio.wait_for(first.called.wait(), 2)
    sweep.discard(first)
    assert len(sweep) == 0 and sweep._timer is None
    told = len(first.calls)
    second = Socket(loop.time())
    sweep.add(second)
    await asyncio.wait_for(second.called.wait(), 2)
    assert len(first.calls) == told  # a socket taken out is not told again


async def test_one_sweep_per_loop_and_timings() -> None:
    loop = asyncio.get_running_loop()
    assert sweep_for(loop, 6.0, 0.5) is sweep_for(loop, 6.0, 0.5)
    assert sweep_for(loop, 6.0, 0.5) is not sweep_for(loop, 1.2, 0.1)


def test_closed_loops_and_their_sweeps_are_let_go() -> None:
    old = asyncio.new_event_loop()
    sweep_for(old, 6.0, 0.5)
    old.close()
    new = asyncio.new_event_loop()
    try:
        assert sweep_for(new, 6.0, 0.5).loop is new
        assert all(not loop.is_closed() for loop, _, _ in keepalive_sweep._sweeps)
    finally:
        new.close()


async def test_each_socket_is_told_when_its_own_silence_ends() -> None:
    """Sockets last read at different times are told in that order, none before its silence."""
    loop = asyncio.get_running_loop()
    sweep = KeepaliveSweep(loop, silence=0.15, tick=0.01)
    start = loop.time()
    sockets = [Socket(start + offset) for offset in (0.2, 0.0, 0.1)]
    for socket in sockets:
        sweep.add(socket)
    await asyncio.wait_for(asyncio.gather(*(s.called.wait() for s in sockets)), 3)
    firsts = [s.calls[0] for s in sockets]
    assert all(at - s.last_received >= 0.15 for at, s in zip(firsts, sockets, strict=True))
    assert firsts[1] <= firsts[2] <= firsts[0]
