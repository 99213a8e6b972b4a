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
    extra: dict[str, Any] = {
        k: v for k, v in fields.model_dump(exclude=_TYPED).items() if v is not None
    }
    ts = to_epoch(fields.ts) if fields.ts is not None else received_at
    return Sample(device_id, ts, fields.cpu, fields.ram, fields.disk, fields.uptime_sec,
                  fields.status, extra)


class SampleWriter:
    def __init__(self, store: Store, max_rows: int, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._max_rows = max_rows
        self._clock = clock
        self._pending: list[tuple[Sample, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.rows_written = 0

    def submit(self, sample: Sample) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((sample, future))
        self._wake.set()
        return future

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
            batch, self._pending = self._pending[: self._max_rows], self._pending[self._max_rows :]
            await self._write(batch)
        self._wake.clear()

    async def _write(self, batch: list[tuple[Sample, asyncio.Future[None]]]) -> None:
        try:
            await self._store.write_samples([s for s, _ in batch], self._clock())
        except Exception as exc:
            log.exception("writing %d samples failed", len(batch))
            outcome: BaseException | None = exc
        else:
            self.rows_written += len(batch)
            outcome = None
        for _, future in batch:
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)
                future.exception()  # mark retrieved: fire-and-forget callers must not warn
