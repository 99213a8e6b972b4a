"""The hub answers an agent's lone keepalive ping without websockets' frame parser (issue 11:
most of what an idle hub reads), with the pong websockets would send; anything else, including a
ping whose first bytes arrived with an earlier read, goes through the parser as before."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

from tests.agents import connect_agent, next_frame
from tests.conftest import HubFactory
from tests.timing import t

MASK = b"\x5a\x01\xa5\x10"


def masked(first: int, payload: bytes, mask: bytes = MASK) -> bytes:
    """A client frame: ``first`` (FIN and opcode), masked as RFC 6455 requires of clients."""
    return bytes((first, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def pongs_of(ws: ClientConnection) -> asyncio.Queue[bytes]:
    """Every pong the hub sends on ``ws``, by payload (the client still sees them)."""
    pongs: asyncio.Queue[bytes] = asyncio.Queue()
    receive = ws.protocol.recv_frame

    def recv_frame(frame: Frame) -> None:
        if frame.opcode is Opcode.PONG:
            pongs.put_nowait(bytes(frame.data))
        receive(frame)

    ws.protocol.recv_frame = recv_frame  # type: ignore[method-assign]
    return pongs


async def test_a_lone_ping_gets_its_pong(hub_factory: HubFactory) -> None:
    """Empty, short and the longest control payloads: each pong carries the ping's payload."""
    hub = await hub_factory()
    async with await connect_agent(hub, "pong-1", ping_interval=None) as ws:
        pongs = pongs_of(ws)
        for payload in (b"", b"k", b"abcd", bytes(range(125))):
            ws.transport.write(masked(0x89, payload))
            assert await asyncio.wait_for(pongs.get(), t(5)) == payload
        assert "pong-1" in hub.hub.sessions


async def test_a_ping_split_across_reads_is_parsed_not_mistaken(hub_factory: HubFactory) -> None:
    """A ping whose header came in an earlier read: the rest is read by the parser, even when it
    looks like a whole ping by itself (its mask starts with a ping's header)."""
    hub = await hub_factory()
    async with await connect_agent(hub, "pong-2", ping_interval=None) as ws:
        pongs = pongs_of(ws)
        payload = b"split-ping"
        tricky = bytes((0x89, 0x80 | (len(payload) - 2), 0x00, 0x00))  # rest: 4 + 10 bytes = a "ping" of 8
        for mask in (MASK, tricky):
            frame = masked(0x89, payload, mask)
            ws.transport.write(frame[:2])
            await asyncio.sleep(0.05)  # the agent's own pace: the header goes out in its own segment
            ws.transport.write(frame[2:])
            assert await asyncio.wait_for(pongs.get(), t(5)) == payload
        assert pongs.empty()


async def test_a_ping_beside_another_frame_goes_through_the_parser(hub_factory: HubFactory) -> None:
    """A ping read together with a text frame: both handled, in order."""
    hub = await hub_factory()
    async with await connect_agent(hub, "pong-3", ping_interval=None) as ws:
        pongs = pongs_of(ws)
        ws.transport.write(masked(0x89, b"first") + masked(0x81, b'{"type": "no-such-frame"}'))
        assert await asyncio.wait_for(pongs.get(), t(5)) == b"first"
        error = await next_frame(ws, "error")
        assert error["code"]
        assert "pong-3" in hub.hub.sessions
