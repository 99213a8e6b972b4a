"""A real hub for tests: uvicorn serving the real app on an unused port, in the test's event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from monitor_server.app import create_app
from monitor_server.hub import Hub
from monitor_server.server import uvicorn_config
from monitor_server.settings import Settings
from tests.timing import t

TOKEN = "test-token-4f9a2c7e1b"


class RunningHub:
    """Start, stop and restart a hub; a restart keeps its port and its database."""

    def __init__(self, db_path: Path, **overrides: Any) -> None:
        self.db_path = db_path
        self.overrides: dict[str, Any] = {"token": TOKEN, "port": 0, "db": db_path, **overrides}
        self.port = 0
        self.app: Starlette | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> Settings:
        return Settings(**{**self.overrides, "port": self.port})

    @property
    def hub(self) -> Hub:
        assert self.app is not None, "hub is not running"
        hub: Hub = self.app.state.hub
        return hub

    @property
    def token(self) -> str:
        return TOKEN

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/agent"

    async def start(self) -> None:
        self.app = create_app(self.settings)
        self._server = uvicorn.Server(uvicorn_config(self.app, self.settings))
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        async with asyncio.timeout(t(10)):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # surface the startup error
                await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()
