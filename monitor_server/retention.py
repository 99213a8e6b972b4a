"""On a schedule: new samples are folded into the history tiers, and what is past its age deleted.

Every ``rollup_interval`` seconds the samples stored since the last pass are folded into the
one-minute and one-hour tiers (DESIGN §14); every ``interval`` seconds raw samples older than the
retention window, tier rows older than their tier's age (90 days, 2 years) and ended dashboard
sessions are deleted. The fold runs first, and the store never deletes a sample not folded yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from monitor_server.cluster import Exclusive
from monitor_server.store import Store
from monitor_server.store.records import TIERS

log = logging.getLogger("monitor_server.retention")

ROLLUP_INTERVAL = 30.0  # seconds between folds; charts never wait for it (queries add the rest)


def cutoff(now: float, days: float) -> float:
    return now - days * 86400.0


async def roll_up(store: Store) -> int:
    folded = await store.roll_up()
    if folded:
        log.debug("rolled up %d samples", folded)
    return folded


async def retention_pass(store: Store, days: float, now: float) -> None:
    """One pass: fold, then delete raw samples, tier rows past their age and ended sessions."""
    await store.roll_up()
    deleted = await store.delete_samples_before(cutoff(now, days))
    if deleted:
        log.info("retention deleted %d samples older than %g days", deleted, days)
    for tier in TIERS:
        rows = await store.delete_rollups_before(tier, cutoff(now, tier.keep_days))
        if rows:
            log.info("retention deleted %d %s rollups older than %g days", rows, tier.name, tier.keep_days)
    await store.delete_ended_sessions(now)


async def run_retention(
    store: Store,
    days: float,
    interval: float,
    clock: Callable[[], float] = time.time,
    rollup_interval: float = ROLLUP_INTERVAL,
    exclusive: Exclusive | None = None,
) -> None:
    """Fold and delete on schedule; with several hubs, one of them at a time (``exclusive``)."""
    next_retention = 0.0
    while True:
        now = clock()
        try:
            async with exclusive("retention") if exclusive else contextlib.nullcontext(True) as mine:
                if mine and now >= next_retention:
                    next_retention = now + interval
                    await retention_pass(store, days, now)
                elif mine:
                    await roll_up(store)
        except Exception:
            log.exception("retention pass failed; retrying next interval")
        await asyncio.sleep(min(rollup_interval, interval))
