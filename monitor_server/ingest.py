"""Samples in, batches out: many rows per transaction, never a commit per sample.

``submit`` returns at once with a future that resolves when the sample's batch is committed.
Agent sockets answer ``stored`` from it; ``POST /ingest`` awaits it (group commit), so the
original agent still gets its answer only after its sample is stored.

A commit that fails for a reason that passes (disk full, database locked, read-only file) is
retried with backoff, in order, and never reported as stored. A row the store refuses for
itself (validation should make this impossible) is isolated by splitting the batch, logged and
left out, so it never takes the other rows down with it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

from monitor_server.store import PresenceEvent, Sample, Store
from protocol.timestamps import to_epoch

log = logging.getLogger("monitor_server.ingest")

_TYPED = {"ts", "type", "device_id", "cpu", "ram", "disk", "uptime_sec", "status"}
# Failures of the place, not of the rows: wait and write the same rows again.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, OSError)
RETRY_FIRST, RETRY_MAX = 0.1, 5.0
NOTED_FAILURE_WINDOW = 30.0  # seconds /health reports a failed write made outside the writer
GIVE_UP_WHEN_CLOSING = 3  # attempts left for the last batch when the hub shuts down


def sample_from(
    device_id: str, values: Mapping[str, Any], received_at: float, extra: Mapping[str, Any] | None = None
) -> Sample:
    """Typed columns for the core metrics, everything else (non-null) kept in ``extra``.

    ``values`` are a validated sample's named fields (``protocol.codec.ReceivedSample``).
    """
    fields = {k: v for k, v in values.items() if v is not None}
    if extra:
        fields.update((k, v) for k, v in extra.items() if k not in _TYPED)
    return sample_of(device_id, fields, received_at)


def sample_of(device_id: str, fields: dict[str, Any], received_at: float) -> Sample:
    """The sample of these set fields (``ReceivedSample.fields``), taking ``fields`` over: the core
    metrics are popped out of it into their columns, and what is left is the sample's ``extra``."""
    pop = fields.pop
    ts = pop("ts", None)
    pop("type", None)
    pop("device_id", None)
    return Sample(
        device_id,
        received_at if ts is None else ts if ts.__class__ is float else to_epoch(ts),
        pop("cpu", None),
        pop("ram", None),
        pop("disk", None),
        pop("uptime_sec", None),
        pop("status", None),
        fields,
    )


class SampleWriter:
    """Pending samples share one future per flush: a sample costs a list append, not a Future.

    The backlog is bounded: past ``max_pending`` rows, ``room()`` makes WebSocket readers wait
    for the next commit, so a fleet replaying its spools (or a store that is failing) slows the
    senders down over TCP instead of growing the hub's memory without limit.
    """

    def __init__(
        self,
        store: Store,
        max_rows: int,
        clock: Callable[[], float] = time.time,
        max_pending: int | None = None,
        hub_id: str | None = None,
    ) -> None:
        self._store = store
        self._hub_id = hub_id  # the hub that claims the devices ``submit``'s ``online`` brings online
        self._max_rows = max_rows
        self._max_pending = max_pending or 4 * max_rows
        self._clock = clock
        self._pending: list[Sample] = []
        self._onlines: list[PresenceEvent] = []  # stored in the transaction of the pending samples
        self._done: asyncio.Future[None] | None = None  # resolves when ``_pending`` is stored
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self.rows_written = 0
        self.rows_refused = 0
        self.failing: str | None = None  # the last commit error while commits fail
        self._noted: tuple[float, str] = (0.0, "")
        # Told the seconds of every store write that worked (the /metrics commit-time histogram).
        self.on_commit: Callable[[float], None] | None = None

    @property
    def pending(self) -> int:
        """Rows submitted and not yet handed to the store (the backlog)."""
        return len(self._pending)

    def submit(self, sample: Sample, online: PresenceEvent | None = None) -> asyncio.Future[None]:
        """Queue one sample; the future resolves when its batch is committed.

        ``online``: a presence transition stored in the same transaction (an HTTP device's first
        sample brings it online without a transaction of its own).
        """
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        self._pending.append(sample)
        if online is not None:
            self._onlines.append(online)
        if len(self._pending) >= self._max_pending:
            self._room.clear()
        self._wake.set()
        return self._done

    def note_failure(self, exc: BaseException) -> None:
        """A store write outside the writer failed for a reason that passes (health says so a while)."""
        self._noted = (time.monotonic(), str(exc))

    def failure(self) -> str | None:
        """Why the store is failing now: the writer retrying, or another write failed recently."""
        if self.failing is not None:
            return self.failing
        at, reason = self._noted
        return reason if reason and time.monotonic() - at < NOTED_FAILURE_WINDOW else None

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
            rows, onlines, done = self._pending, self._onlines, self._done
            self._pending, self._onlines, self._done = [], [], None
            outcome: BaseException | None = None
            for start in range(0, len(rows), self._max_rows):
                chunk = rows[start : start + self._max_rows]
                outcome = await self._write_until_stored(chunk, onlines) or outcome
                onlines = []  # with the first chunk: the store creates a device row it lacks
            if len(self._pending) < self._max_pending:
                self._room.set()
            if done is not None and not done.done():
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(outcome)
                    done.exception()  # mark retrieved: fire-and-forget callers must not warn
        self._wake.clear()

    async def _write_until_stored(
        self, batch: list[Sample], onlines: list[PresenceEvent]
    ) -> BaseException | None:
        """Write ``batch``, retrying failures that pass; only a shutdown makes it give up."""
        delay, attempts = RETRY_FIRST, 0
        while True:
            try:
                await self._write_isolating(batch, onlines)
            except TRANSIENT_ERRORS as exc:
                attempts += 1
                if self._closing and attempts >= GIVE_UP_WHEN_CLOSING:
                    log.error(
                        "giving up %d samples at shutdown: %s (agents send them again)", len(batch), exc
                    )
                    return exc
                if self.failing is None:
                    log.error("writing %d samples failed, retrying until it works: %s", len(batch), exc)
                self.failing = str(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if self.failing is not None:
                log.warning("writing samples works again")
                self.failing = None
            self._noted = (0.0, "")  # a commit just worked: earlier failures are over
            return None

    async def _write_isolating(self, batch: list[Sample], onlines: list[PresenceEvent]) -> None:
        """Write ``batch``; a row the store refuses is found by halving and left out.

        Before halving, ``onlines`` are stored on their own: a refused row takes no transition down.
        """
        started = time.perf_counter()
        try:
            await self._store.write_samples(batch, self._clock(), onlines, self._hub_id)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            if onlines:
                await self._store_alone(onlines)
                await self._write_isolating(batch, [])
                return
            if len(batch) == 1:
                self.rows_refused += 1
                log.error("the store refused a sample of %s at %s: %r", batch[0].device_id, batch[0].ts, exc)
                return
            middle = len(batch) // 2
            await self._write_isolating(batch[:middle], [])
            await self._write_isolating(batch[middle:], [])
            return
        self.rows_written += len(batch)
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started)

    async def _store_alone(self, onlines: list[PresenceEvent]) -> None:
        """The transitions of a batch the store refused, in a transaction of their own."""
        try:
            await self._store.set_presence_many(onlines, self._hub_id, claim=True)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            log.error("the store refused %d presence transitions: %r", len(onlines), exc)
