"""Agents that stopped sending: one sweep over the sessions instead of a timer per frame.

A socket notes when its last frame arrived (a float store per frame); every ``IDLE_CHECKS``-th
of the idle timeout the sweep closes those silent for longer with ``TIMEOUT`` (presence reason
``timeout``). It replaced an ``asyncio.timeout`` around every receive, which cost about an eighth
of the hub's loop under live one-sample frames (bench/notes.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from protocol.codes import CloseCode

log = logging.getLogger("monitor_server.idle")

IDLE_CHECKS = 8  # sweeps per idle timeout: a silent agent is closed at most 1/8 of it late


class Watched(Protocol):
    device_id: str
    last_frame: float

    def abort(self, code: int, reason: str) -> None: ...


def close_idle(sockets: Iterable[Watched], now: float, idle_timeout: float) -> int:
    """Close every socket silent for more than ``idle_timeout``; return how many."""
    silent = [s for s in sockets if now - s.last_frame > idle_timeout]
    for socket in silent:
        log.info("agent %s: no frame for %.1f s, closing", socket.device_id, now - socket.last_frame)
        socket.abort(CloseCode.TIMEOUT, "no frame within the idle timeout")
    return len(silent)


async def run_idle_sweeper(
    sockets: Callable[[], Iterable[Watched]],
    idle_timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    interval = idle_timeout / IDLE_CHECKS
    while True:
        await asyncio.sleep(interval)
        try:
            close_idle(sockets(), clock(), idle_timeout)
        except Exception:
            log.exception("idle sweep failed; retrying next interval")
