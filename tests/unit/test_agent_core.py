"""The transport-independent agent: samples into the spool, errors reported, not raised."""

from __future__ import annotations

import asyncio

from monitor_agent.agent import Agent, ExitReason, Identity
from monitor_agent.journal import MemoryJournal
from monitor_agent.spool import MemorySpool


def make_agent(source) -> Agent:  # type: ignore[no-untyped-def]
    return Agent(
        identity=Identity("unit-1", "host", "linux", "9.9"),
        sample_source=source,
        spool=MemorySpool(10),
        journal=MemoryJournal(),
        interval=5,
        clock=lambda: 1000.0,
    )


async def test_sample_is_stamped_and_spooled() -> None:
    """collect_now stores a sample with ts, identity fields and the dropped counter."""
    agent = make_agent(lambda: {"cpu": 1.0})
    await agent.collect_now()
    ((_, sample),) = agent.spool.peek(5)
    assert sample == {
        "cpu": 1.0,
        "hostname": "host",
        "agent_version": "9.9",
        "ts": 1000.0,
        "spool_dropped": 0,
    }
    assert agent.sample_ready.is_set()


async def test_sampling_exception_becomes_status_error() -> None:
    """A sample source that raises yields a sample with status error and last_error."""

    def broken() -> dict[str, object]:
        raise OSError("no /proc")

    agent = make_agent(broken)
    await agent.collect_now()
    ((_, sample),) = agent.spool.peek(5)
    assert sample["status"] == "error" and "no /proc" in str(sample["last_error"])


async def test_handler_exception_rides_on_the_next_sample() -> None:
    """A command whose handler raised is acked false and reported once in last_error."""

    async def boom() -> None:
        raise RuntimeError("kaput")

    agent = make_agent(lambda: {"cpu": 1.0})
    agent.handlers._collect_now = boom
    await agent.handle_command(1, "collect", None)
    assert agent.journal.get(1) is not None
    await agent.collect_now()
    await agent.collect_now()
    first, second = (s for _, s in agent.spool.peek(5))
    assert first["status"] == "error" and "kaput" in str(first["last_error"])
    assert "status" not in second


async def test_a_command_result_makes_its_ack_due() -> None:
    """A command queued through the ports runs, is journaled, and its ack is ready for the transport."""
    agent = make_agent(lambda: {"cpu": 1.0})
    ports = agent.ports()
    worker = asyncio.create_task(agent._work_commands())
    try:
        ports.commands.submit(3, "ping", None)
        async with asyncio.timeout(5):
            await ports.commands.join()
    finally:
        worker.cancel()
    assert ports.acks.ready.is_set()
    ((command_id, result),) = ports.acks.unconfirmed()
    assert command_id == 3 and result.success and result.message == "pong"
    ports.acks.confirm(3)
    assert ports.acks.unconfirmed() == []


async def test_a_result_the_journal_cannot_take_is_still_acked() -> None:
    """When the journal cannot record a command, its failure is acked from memory until confirmed."""

    class FullDisk(MemoryJournal):
        def begin(self, command_id: int, command: str) -> None:
            raise OSError("disk full")

    agent = Agent(
        identity=Identity("unit-1", "host", "linux", "9.9"),
        sample_source=dict,
        spool=MemorySpool(10),
        journal=FullDisk(),
        interval=5,
    )
    await agent.handle_command(8, "ping", None)
    ((command_id, result),) = agent.ports().acks.unconfirmed()
    assert command_id == 8 and not result.success and "journal" in result.message
    agent.ports().acks.confirm(8)
    assert agent.unconfirmed_acks() == []


async def test_stop_reason_reaches_the_ports() -> None:
    """stop(RESTART) sets the stop signal the transport watches, and says it is a restart."""
    agent = make_agent(dict)
    stop = agent.ports().stop
    assert not stop.stopping.is_set() and not stop.restarting
    agent.stop(ExitReason.RESTART)
    agent.stop()  # a second call does not change the reason
    assert stop.stopping.is_set() and stop.restarting
