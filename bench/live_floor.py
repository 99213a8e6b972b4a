"""The floor for live frames: ``python -m bench.live_floor`` (port from ``MONITOR_PORT``).

A server with the hub's stack and none of its work: uvicorn (uvloop, httptools, the sans-I/O
WebSocket protocol, no deflate) and one Starlette ``WebSocketRoute`` at ``/ws/agent``. It answers
``bench/live_load.py``'s hello with a welcome, decodes every frame (``msgspec``, as the hub does)
and answers ``stored`` for the newest ``seq`` of each connection every ``ACK_EVERY`` seconds, as
the hub does after each commit. Nothing is validated, stored, evaluated or published.

``bench/ingest.py`` runs it pinned to the hub's core under the same live load as the hub, in the
same run: its CPU per frame is what any hub built on this stack pays per frame before doing
anything with it. ``GET /health`` answers once it listens, ``GET /count`` the frames decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

ACK_EVERY = 0.1  # seconds between two rounds of ``stored`` frames (the hub commits every ~0.15 s here)


class Frame(msgspec.Struct):
    type: str
    seq: int | None = None


class Floor:
    def __init__(self) -> None:
        self.frames = 0
        self.owed: dict[WebSocket, int] = {}  # connection -> newest seq not yet acknowledged
        self._decode = msgspec.json.Decoder(Frame).decode

    async def agent(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()  # the hello
        await ws.send_text('{"type":"welcome"}')
        decode = self._decode
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                frame = decode(message["text"])
                self.frames += 1
                if frame.seq is not None:
                    self.owed[ws] = frame.seq
        finally:
            self.owed.pop(ws, None)

    async def acknowledge(self) -> None:
        while True:
            await asyncio.sleep(ACK_EVERY)
            owed, self.owed = self.owed, {}
            for ws, seq in owed.items():
                with contextlib.suppress(Exception):  # a connection that went meanwhile
                    await ws.send_text(f'{{"type":"stored","seq":{seq}}}')

    async def count(self, request: Request) -> JSONResponse:
        return JSONResponse({"frames": self.frames})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def app() -> Starlette:
    floor = Floor()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(floor.acknowledge())
        yield
        task.cancel()

    routes = [
        Route("/health", health),
        Route("/count", floor.count),
        WebSocketRoute("/ws/agent", floor.agent),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    config = uvicorn.Config(
        app(),
        host="127.0.0.1",
        port=int(os.environ["MONITOR_PORT"]),
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
