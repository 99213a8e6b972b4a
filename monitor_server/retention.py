"""On a schedule: raw samples older than the retention window, and ended dashboard sessions, are deleted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from monitor_server.store import Store

log = logging.getLogger("monitor_server.retention")


def cutoff(now: float, days: float) -> float:
    return now - days * 86400.0


async def run_retention(
    store: Store, days: float, interval: float, clock: Callable[[], float] = time.time
) -> None:
    while True:
        try:
            deleted = await store.delete_samples_before(cutoff(clock(), days))
            if deleted:
                log.info("retention deleted %d samples older than %g days", deleted, days)
            await store.delete_ended_sessions(clock())
        except Exception:
            log.exception("retention pass failed; retrying next interval")
        await asyncio.sleep(interval)
