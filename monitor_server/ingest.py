"""Samples in, batches out: many rows per transaction, never a commit per sample.

``submit`` returns at once with a future that resolves when the sample's batch is committed.
WebSocket metrics do not wait for it; ``POST /ingest`` does (group commit), so the original
agent still gets its answer only after its sample is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from monitor_server.store import Sample, Store
from protocol import SampleFields, to_epoch

log = logging.getLogger("monitor_server.ingest")

_TYPED = {"ts", "type", "device_id", "cpu", "ram", "disk", "uptime_sec", "status"}


def sample_from(device_id: str, fields: SampleFields, received_at: float) -> Sample:
    """Typed columns for the core metrics, everything else (non-null) kept in ``extra``."""
    # The attributes as validated (flat JSON values), not model_dump(): that re-serialises every
    # field and was the largest cost of a sample on the ingest path.
    values: dict[str, Any] = {**fields.__dict__, **(fields.__pydantic_extra__ or {})}
    extra = {k: v for k, v in values.items() if v is not None and k not in _TYPED}
    ts = to_epoch(fields.ts) if fields.ts is not None else received_at
    return Sample(device_id, ts, fields.cpu, fields.ram, fields.disk, fields.uptime_sec, fields.status, extra)


class SampleWriter:
    """Pending samples share one future per flush: a sample costs a list append, not a Future.

    The backlog is bounded: past ``max_pending`` rows, ``room()`` makes WebSocket readers wait
    for the next commit, so a fleet replaying its spools slows down (TCP back-pressure) instead
    of growing the hub's memory without limit.
    """

    def __init__(
        self,
        store: Store,
        max_rows: int,
        clock: Callable[[], float] = time.time,
        max_pending: int | None = None,
    ) -> None:
        self._store = store
        self._max_rows = max_rows
        self._max_pending = max_pending or 4 * max_rows
        self._clock = clock
        self._pending: list[Sample] = []
        self._done: asyncio.Future[None] | None = None  # resolves when ``_pending`` is stored
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self.rows_written = 0

    def submit(self, sample: Sample) -> asyncio.Future[None]:
        """Queue one sample; the future resolves when its batch is committed."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        self._pending.append(sample)
        if len(self._pending) >= self._max_pending:
            self._room.clear()
        self._wake.set()
        return self._done

    async def room(self) -> None:
        """Return at once unless the backlog is full; then wait for the next commit."""
        if not self._room.is_set():
            await self._room.wait()

    async def run(self) -> None:
        """Flush until closed; whatever arrives during one transaction forms the next batch."""
        while not self._closing:
            await self._wake.wait()
            await self.flush()

    def close(self) -> None:
        """Stop ``run`` after it has written everything submitted so far (never mid-batch)."""
        self._closing = True
        self._wake.set()

    async def flush(self) -> None:
        while self._pending:
            rows, done = self._pending, self._done
            self._pending, self._done = [], None
            outcome: BaseException | None = None
            for start in range(0, len(rows), self._max_rows):
                outcome = await self._write(rows[start : start + self._max_rows]) or outcome
            if len(self._pending) < self._max_pending:
                self._room.set()
            if done is not None and not done.done():
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(outcome)
                    done.exception()  # mark retrieved: fire-and-forget callers must not warn
        self._wake.clear()

    async def _write(self, batch: list[Sample]) -> BaseException | None:
        try:
            await self._store.write_samples(batch, self._clock())
        except Exception as exc:
            log.exception("writing %d samples failed", len(batch))
            return exc
        self.rows_written += len(batch)
        return None
