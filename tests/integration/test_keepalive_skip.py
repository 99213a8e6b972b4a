"""The hub pings only a peer silent for a whole ping interval and a grace (issue 11).

Frames from the agent prove it alive as well as a pong would, so a busy or heartbeating agent is
not pinged; one that goes silent is pinged an interval after its last frame and dropped a ping
timeout later, as before.
"""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

from tests.agents import connect_agent, send
from tests.conftest import HubFactory
from tests.integration.test_hub_presence import presence_event
from tests.timing import t


def count_pings(ws: ClientConnection) -> list[float]:
    """Record the arrival of every ping the hub sends on ``ws`` (the client still answers them)."""
    seen: list[float] = []
    receive = ws.protocol.recv_frame

    def recv_frame(frame: Frame) -> None:
        if frame.opcode is Opcode.PING:
            seen.append(time.perf_counter())
        receive(frame)

    ws.protocol.recv_frame = recv_frame  # type: ignore[method-assign]
    return seen


async def test_frames_spare_the_ping(hub_factory: HubFactory) -> None:
    """An agent sending a frame more often than the ping interval is never pinged."""
    hub = await hub_factory(ping_interval=0.3, ping_timeout=0.3, heartbeat_interval=0.2)
    async with await connect_agent(hub, "keep-1", ping_interval=None) as ws:
        pings = count_pings(ws)
        for _ in range(15):  # 1.5 s: five ping intervals
            await send(ws, {"type": "heartbeat"})
            await asyncio.sleep(0.1)  # the agent's own pace, not a wait for a result
        assert pings == []
        assert "keep-1" in hub.hub.sessions


async def test_heartbeats_at_the_ping_interval_spare_the_ping(hub_factory: HubFactory) -> None:
    """An agent heartbeating every ping interval (the defaults: both 5 s) is not pinged: its
    frame lands a little after the interval, inside the grace."""
    hub = await hub_factory(ping_interval=0.5, ping_timeout=0.5, heartbeat_interval=0.5)
    async with await connect_agent(hub, "keep-4", ping_interval=None) as ws:
        pings = count_pings(ws)
        for _ in range(6):  # six intervals; pinging on a fixed clock sends about six pings
            await send(ws, {"type": "heartbeat"})
            await asyncio.sleep(0.5)  # the agent's own pace: one heartbeat per interval
        assert len(pings) <= 1, f"{len(pings)} pings to an agent heartbeating every interval"
        assert "keep-4" in hub.hub.sessions


async def test_a_quiet_agent_is_pinged_and_kept(hub_factory: HubFactory) -> None:
    """An agent that sends nothing but answers pings is pinged about once an interval."""
    hub = await hub_factory(ping_interval=0.2, ping_timeout=0.2, heartbeat_interval=5)
    async with await connect_agent(hub, "keep-2", ping_interval=None) as ws:
        pings = count_pings(ws)
        await asyncio.sleep(1.2)  # six intervals of silence from the agent (it answers pings only)
        assert len(pings) >= 2
        assert "keep-2" in hub.hub.sessions


async def test_silence_after_frames_is_noticed_within_interval_and_timeout(hub_factory: HubFactory) -> None:
    """Frames, then nothing at all (not even pongs): offline with reason timeout, an interval
    plus a timeout after the last frame, as when pings went out on a fixed clock."""
    hub = await hub_factory(ping_interval=0.3, ping_timeout=0.3, heartbeat_interval=5)
    async with hub.hub.bus.subscribe() as sub:
        ws = await connect_agent(hub, "keep-3", ping_interval=None)
        await presence_event(sub, "keep-3", True)
        for _ in range(6):
            await send(ws, {"type": "heartbeat"})
            await asyncio.sleep(0.1)  # the agent's own pace
        ws.transport.pause_reading()  # frozen: no frame, no pong
        frozen = time.perf_counter()
        offline = await presence_event(sub, "keep-3", False, within=3)
        waited = time.perf_counter() - frozen
    assert offline["reason"] == "timeout"
    assert waited < t(0.3 + 0.3 + 0.5), f"took {waited:.2f} s with a 0.3 s ping interval and timeout"
    ws.transport.abort()
