"""An agent socket's outbox: a backlog of any size is paged in, a slow reader is bounded in bytes."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx

from tests.agentd import eventually
from tests.agents import connect_agent, next_frame
from tests.conftest import HubFactory
from tests.timing import t


async def test_backlog_larger_than_the_outbox_is_delivered_in_order(hub_factory: HubFactory) -> None:
    """300 commands queued while away reach an agent whose outbox holds 16, FIFO, with no disconnect."""
    hub = await hub_factory(outbox_size=16)
    headers = {"X-Auth-Token": hub.token}
    async with httpx.AsyncClient(base_url=hub.http_url, headers=headers) as api:
        ids = []
        for i in range(300):
            queued = await api.post("/devices/away/commands", json={"command": "echo", "args": {"i": i}})
            ids.append(queued.json()["id"])
        async with await connect_agent(hub, "away") as ws:
            received = [(await next_frame(ws, "command"))["id"] for _ in ids]
            assert ws.close_code is None
        events = (await api.get("/devices/away/events")).json()["events"]
    assert received == ids
    assert not [e for e in events if e["reason"] == "overloaded"]


async def test_outbox_is_bounded_in_bytes(hub_factory: HubFactory) -> None:
    """An agent that stops reading is dropped (1013, ``overloaded``) once its outbox passes its byte limit."""
    hub = await hub_factory(outbox_bytes=2 << 20)
    headers = {"X-Auth-Token": hub.token}
    async with httpx.AsyncClient(base_url=hub.http_url, headers=headers) as api:
        # max_queue=1 and a small read buffer: the client stops reading almost at once. The
        # socket's receive buffer is fixed small: autotuned, it grows up to net.ipv4.tcp_rmem's
        # maximum (32 MiB on some machines) and would take in all 8 MB before the outbox fills.
        sock = _small_receive_buffer(hub.http_url)
        ws = await connect_agent(hub, "slow", max_queue=1, max_size=1 << 20, sock=sock)
        big = {"command": "echo", "args": {"blob": "x" * 200_000}}
        for _ in range(40):  # 8 MB: far over 2 MiB of outbox plus what the kernel buffers
            response = await api.post("/devices/slow/commands", json=big)
            assert response.status_code == 200

        async def dropped() -> bool:
            device = (await api.get("/devices/slow")).json()
            return device["online"] is False and device["offline_reason"] == "overloaded"

        await eventually(dropped, within=t(10), what="slow agent dropped as overloaded")
        ws.transport.abort()


def _small_receive_buffer(url: str) -> socket.socket:
    """A socket connected to the hub with a 64 KiB receive buffer, set before it connects."""
    address = urlsplit(url)
    assert address.hostname is not None and address.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    sock.connect((address.hostname, address.port))  # the kernel completes it: the hub's loop need not run
    sock.setblocking(False)
    return sock
