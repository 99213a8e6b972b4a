"""The per-connection Queue and Event without deques behave as asyncio's do where the hub uses them."""

from __future__ import annotations

import asyncio

import pytest

from monitor_server.lean_sync import ReceiveQueue, Wakeup


async def test_receive_queue_hands_items_over_in_order_and_wakes_a_waiting_reader() -> None:
    queue = ReceiveQueue()
    assert queue.empty() and queue.qsize() == 0
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not reader.done()
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert await reader == "a"
    assert queue.qsize() == 1 and queue.get_nowait() == "b"
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_a_cancelled_reader_leaves_the_queue_usable() -> None:
    queue = ReceiveQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    queue.put_nowait(1)
    assert await queue.get() == 1


async def test_wakeup_wakes_every_waiter_and_stays_set_until_cleared() -> None:
    wake = Wakeup()
    waiters = [asyncio.ensure_future(wake.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    wake.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert wake.is_set() and await wake.wait()
    wake.clear()
    assert not wake.is_set()


async def test_one_cancelled_waiter_does_not_wake_the_others() -> None:
    wake = Wakeup()
    cancelled, other = asyncio.ensure_future(wake.wait()), asyncio.ensure_future(wake.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert cancelled.cancelled() and not other.done()
    wake.set()
    assert await other
