"""Group commit: one write for the callers that arrive while another is in flight."""

from __future__ import annotations

import asyncio

import pytest

from monitor_server.group_commit import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None
        self.started = asyncio.Event()

    async def write(self, batch: list[int]) -> None:
        self.batches.append(batch)
        self.started.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail


async def test_a_lone_caller_is_written_at_once_and_later_ones_share_the_next_write() -> None:
    rec = Recorder()
    commit = GroupCommit(rec.write)
    first = asyncio.ensure_future(commit.submit(1))
    await rec.started.wait()
    assert rec.batches == [[1]]  # started without waiting for company
    later = [asyncio.ensure_future(commit.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not first.done() and rec.batches == [[1]]
    rec.release.set()
    await asyncio.gather(first, *later)
    assert rec.batches == [[1], [2, 3, 4]]


async def test_a_failed_write_fails_its_callers_only() -> None:
    rec = Recorder()
    commit = GroupCommit(rec.write)
    rec.fail = OSError("disk full")
    failing = asyncio.ensure_future(commit.submit(1))
    rec.release.set()
    with pytest.raises(OSError, match="disk full"):
        await failing
    rec.fail = None
    await commit.submit(2)
    assert rec.batches == [[1], [2]]


async def test_a_cancelled_caller_is_written_anyway_and_others_still_wait() -> None:
    rec = Recorder()
    commit = GroupCommit(rec.write)
    first = asyncio.ensure_future(commit.submit(1))
    await rec.started.wait()
    cancelled = asyncio.ensure_future(commit.submit(2))
    waiting = asyncio.ensure_future(commit.submit(3))
    await asyncio.sleep(0)
    cancelled.cancel()
    rec.release.set()
    await asyncio.gather(first, waiting)
    assert cancelled.cancelled()
    assert rec.batches == [[1], [2, 3]]


async def test_each_caller_gets_what_its_batch_write_returned() -> None:
    """The write's result goes to every caller of its batch, and only to them."""

    async def stored_evens(batch: list[int]) -> frozenset[int]:
        await gate.wait()
        return frozenset(n for n in batch if n % 2 == 0)

    gate = asyncio.Event()
    commit: GroupCommit[int, frozenset[int]] = GroupCommit(stored_evens)
    first = asyncio.ensure_future(commit.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(commit.submit(n)) for n in (2, 3)]
    gate.set()
    assert await first == frozenset()
    assert [await r for r in rest] == [frozenset({2}), frozenset({2})]
