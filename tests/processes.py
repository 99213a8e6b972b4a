"""A hub as a real separate process (for kill -9, restarts and what the console script does)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.timing import t


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class HubProcess:
    def __init__(self, db: Path, port: int, token: str, **env: str) -> None:
        self.db, self.port, self.token = db, port, token
        self.env = {
            **os.environ,
            "MONITOR_TOKEN": token,
            "MONITOR_DB": str(db),
            "MONITOR_PORT": str(port),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = db.parent / "hub.log"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/agent"

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor_server"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        await self.wait_healthy()

    async def wait_healthy(self) -> None:
        async with asyncio.timeout(t(20)), httpx.AsyncClient() as client:
            while True:
                assert self.proc is not None and self.proc.poll() is None, "hub process exited"
                try:
                    if (await client.get(f"{self.http_url}/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=t(10))
